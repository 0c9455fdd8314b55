# The three services' images from one pattern: the build argument SERVICE names the binary.
# Build context: the workspace root.
#   docker build --target service --build-arg SERVICE=users_service \
#       -t forgettable-images/users_service:local .
#   docker build --build-arg SERVICE=inference_service --target inference_service \
#       -t forgettable-images/inference_service:local .
# `docker compose up --build` builds all three; the Rust code is compiled once for all.
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

# The recipe lists the workspace's manifests and lock file only: it changes when dependencies
# change. (This stage reads the whole context, but it is cheap and only its recipe goes on.)
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# The three release binaries, and the CA roots for outgoing TLS (S3, PostgreSQL with TLS).
# `cook` builds the dependencies and leaves the workspace's skeleton (every member's targets as
# empty files). Over it come the manifests and the services' sources alone: an edit to docs,
# monitoring, deploy files, tests or the tool crates rebuilds nothing.
FROM chef AS compiled
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
        --package users_service --package images_service --package inference_service
COPY Cargo.toml Cargo.lock ./
COPY xtask/Cargo.toml xtask/Cargo.toml
COPY testkit/Cargo.toml testkit/Cargo.toml
COPY benches/Cargo.toml benches/Cargo.toml
COPY system_tests/Cargo.toml system_tests/Cargo.toml
COPY common/Cargo.toml common/Cargo.toml
COPY common/src common/src
COPY users_service/Cargo.toml users_service/Cargo.toml
COPY users_service/src users_service/src
COPY users_service/migrations users_service/migrations
COPY images_service/Cargo.toml images_service/Cargo.toml
COPY images_service/src images_service/src
COPY images_service/migrations images_service/migrations
COPY inference_service/Cargo.toml inference_service/Cargo.toml
COPY inference_service/src inference_service/src
RUN cargo build --release --locked --bins \
        --package users_service --package images_service --package inference_service \
    && mkdir -p /out/bin \
    && cp target/release/users_service target/release/images_service target/release/inference_service /out/bin/ \
    && strip --strip-debug /out/bin/* \
    && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# The model: the resmem wheel from PyPI, converted to ONNX by inference_service/convert/convert_resmem.py
# and checked with onnxruntime against the committed torch reference scores and photos. The pins
# and their hashes are the files `cargo xtask model` uses: requirements.txt and resmem.txt.
FROM ${PYTHON_IMAGE} AS converted
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY inference_service/convert/requirements.txt inference_service/convert/resmem.txt inference_service/convert/
RUN pip install --no-cache-dir --require-hashes -r inference_service/convert/requirements.txt \
    && pip download --no-cache-dir --no-deps --dest /wheel --require-hashes -r inference_service/convert/resmem.txt
COPY inference_service/convert/ /src/inference_service/convert/
COPY inference_service/tests/fixtures/resmem_golden.json /src/inference_service/tests/fixtures/resmem_golden.json
COPY inference_service/tests/fixtures/photos/ /src/inference_service/tests/fixtures/photos/
WORKDIR /src/inference_service/convert
# The onnxruntime wheel's shared library goes beside the model: the service's second engine
# (INFERENCE_ENGINE=onnxruntime) loads it at run time through ORT_DYLIB_PATH.
RUN python convert_resmem.py --wheel /wheel/resmem-*.whl --out /model \
    && python -c "import json; print(json.load(open('/model/manifest.json'))['licence'])" > /model/LICENCE-NOTE.txt \
    && echo "Model licence: $(cat /model/LICENCE-NOTE.txt)" \
    && mkdir -p /model/onnxruntime \
    && cp "$(python -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))')"/capi/libonnxruntime.so.* \
        /model/onnxruntime/libonnxruntime.so

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

# One service: its binary as /app/service, run as the unprivileged user, checked by its own
# `healthcheck` subcommand. DATA_DIRS lists the writable folders its volumes mount on.
FROM runtime AS service
ARG SERVICE
ARG DATA_DIRS=""
RUN test -n "${SERVICE}" || { echo "build argument SERVICE is required" >&2; exit 1; } \
    && for dir in data ${DATA_DIRS}; do mkdir -p "/app/${dir}"; done \
    && chown -R app:app /app/data
COPY --from=binaries /out/bin/${SERVICE} /app/service
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/service", "healthcheck"]
ENTRYPOINT ["/app/service"]

# The inference service adds the model. ResMem is licensed for non-commercial use only: the image
# shows the licence note at every start.
FROM service AS inference_service
COPY --from=model /model /app/model
COPY deploy/inference-entrypoint.sh /app/entrypoint.sh
ENV MODEL_DIR=/app/model \
    ORT_DYLIB_PATH=/app/model/onnxruntime/libonnxruntime.so
# Loading the model takes a while: a longer start period before failures count.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/app/service", "healthcheck"]
ENTRYPOINT ["/app/entrypoint.sh"]
