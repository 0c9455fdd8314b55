# The three services' images, one target each. Build context: the workspace root.
#   docker build --target users_service -t forgettable-images/users_service:local .
# `docker compose up --build` builds the three targets; the Rust code is compiled once for all.
#
# Base images and two stage outputs are build arguments, so that an engine that cannot pull builds
# the same runtime stages from local images (deploy/local/README.md):
#   RUST_IMAGE, PYTHON_IMAGE, RUNTIME_IMAGE   the base images
#   BINARIES  the stage or image holding /out/bin/<service> and /out/ca-certificates.crt
#   MODEL     the stage or image holding the converted model in /model
# Unused stages are skipped (BuildKit), so overriding BINARIES and MODEL never touches Rust or pip.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-20251229-slim
ARG BINARIES=compiled
ARG MODEL=converted

# Toolchain with cargo-chef: the dependency build becomes its own cached layer, so a source change
# recompiles only the workspace crates.
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The recipe lists the manifests and lock file only: it changes when dependencies change.
FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY common common
COPY users_service users_service
COPY images_service images_service
COPY inference_service inference_service
COPY testkit testkit
COPY xtask xtask
RUN cargo chef prepare --recipe-path recipe.json

# The three release binaries, and the CA roots for outgoing TLS (S3, PostgreSQL with TLS).
FROM chef AS compiled
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
        --package users_service --package images_service --package inference_service
COPY Cargo.toml Cargo.lock ./
COPY common common
COPY users_service users_service
COPY images_service images_service
COPY inference_service inference_service
COPY testkit testkit
COPY xtask xtask
RUN cargo build --release --locked --bins \
        --package users_service --package images_service --package inference_service \
    && mkdir -p /out/bin \
    && cp target/release/users_service target/release/images_service target/release/inference_service /out/bin/ \
    && strip --strip-debug /out/bin/* \
    && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# The model: the pinned resmem wheel from PyPI, checked against its SHA-256, converted to ONNX by
# inference_service/convert/convert_resmem.py and checked with onnxruntime against the committed
# torch reference scores and photos. Versions and hash are those of xtask/src/model.rs.
FROM ${PYTHON_IMAGE} AS converted
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN pip install --no-cache-dir numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0 pillow==13.0.0
WORKDIR /wheel
RUN pip download --no-cache-dir --no-deps --dest /wheel resmem==1.1.6 \
    && echo "2ed9d656280761215cde8f94a58197cdca523ccacb36fbd949edbea7a62c5572  resmem-1.1.6-py3-none-any.whl" > SHA256SUMS \
    && sha256sum --check SHA256SUMS
COPY inference_service/convert/ /src/inference_service/convert/
COPY inference_service/tests/fixtures/resmem_golden.json /src/inference_service/tests/fixtures/resmem_golden.json
COPY inference_service/tests/fixtures/photos/ /src/inference_service/tests/fixtures/photos/
WORKDIR /src/inference_service/convert
RUN python convert_resmem.py --wheel /wheel/resmem-1.1.6-py3-none-any.whl --out /model \
    && python -c "import json; print(json.load(open('/model/manifest.json'))['licence'])" > /model/LICENCE-NOTE.txt \
    && echo "Model licence: $(cat /model/LICENCE-NOTE.txt)"

FROM ${BINARIES} AS binaries
FROM ${MODEL} AS model

# What every service image shares: Debian slim (the builder's glibc), an unprivileged user, the CA
# roots. No compiler, no shell tools added.
FROM ${RUNTIME_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=binaries /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
WORKDIR /app
# Defaults for a container; Compose sets these explicitly as well.
ENV LISTEN_ADDR=0.0.0.0:8000 \
    LOG_FORMAT=json
EXPOSE 8000

FROM runtime AS users_service
RUN mkdir -p /app/data/keys && chown -R app:app /app/data
COPY --from=binaries /out/bin/users_service /app/users_service
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/users_service", "healthcheck"]
ENTRYPOINT ["/app/users_service"]

FROM runtime AS images_service
RUN mkdir -p /app/data/blobs && chown -R app:app /app/data
COPY --from=binaries /out/bin/images_service /app/images_service
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/images_service", "healthcheck"]
ENTRYPOINT ["/app/images_service"]

# ResMem is licensed for non-commercial use only: the image shows the licence note at every start.
FROM runtime AS inference_service
COPY --from=model /model /app/model
COPY --from=binaries /out/bin/inference_service /app/inference_service
COPY deploy/inference-entrypoint.sh /app/entrypoint.sh
ENV MODEL_DIR=/app/model
USER 10001:10001
# Loading the model takes a while: a longer start period before failures count.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/app/inference_service", "healthcheck"]
ENTRYPOINT ["/app/entrypoint.sh"]
