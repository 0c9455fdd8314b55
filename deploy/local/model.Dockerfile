# The output of the Dockerfile's `converted` stage, from the model `cargo xtask model` converted on
# the host (the same converter, pins and self-check): the build context is that model folder
# plus LICENCE-NOTE.txt.
FROM scratch
COPY . /model/
