# The output of the Dockerfile's `compiled` stage, from host-built release binaries: the build
# context holds bin/<service> and ca-certificates.crt (the host's Debian CA bundle).
FROM scratch
COPY bin/ /out/bin/
COPY ca-certificates.crt /out/ca-certificates.crt
