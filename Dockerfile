# One multi-stage image definition for the four services: `docker build --build-arg SERVICE=boxes .`
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked --bins

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 app \
    && mkdir -p /var/lib/boxes/files && chown app /var/lib/boxes/files
ARG SERVICE
COPY --from=build /src/target/dist/${SERVICE} /usr/local/bin/service
USER app
ENTRYPOINT ["/usr/local/bin/service"]
