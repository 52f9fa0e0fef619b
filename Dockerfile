# Builds both binaries (sessionfold-api, sessionfold-projector) into one
# small runtime image. Build: docker build -t sessionfold .
# Run:   docker run sessionfold sessionfold-api serve
#        docker run sessionfold sessionfold-projector run

# The toolchain matches `rust-version` in Cargo.toml, which is also the
# highest minimum Rust version among the locked dependencies.
FROM rust:1.88-bookworm AS build
WORKDIR /src
# rdkafka-sys 4.10 builds its bundled librdkafka with configure and make,
# which this image has; cmake would only be needed for its cmake-build feature.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sessionfold-api -p sessionfold-projector \
    && mkdir -p /out \
    && cp target/release/sessionfold-api target/release/sessionfold-projector /out/

FROM debian:bookworm-slim
# ca-certificates for TLS to managed MongoDB/Redis/Kafka; curl for the
# compose health check of the API.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home sessionfold
COPY --from=build /out/ /usr/local/bin/
USER sessionfold
EXPOSE 4001
ENV LISTEN_ADDR=0.0.0.0:4001 LOG_FORMAT=json
CMD ["sessionfold-api", "serve"]
