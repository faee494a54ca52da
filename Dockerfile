# keyward in a container: built in Rust's official image, run from a distroless one (glibc and
# libgcc only, no shell, no package manager) as its non-root user. Data in /var/lib/keyward.
#   docker build -t keyward .
#   docker run -p 3000:3000 -v keyward:/var/lib/keyward keyward
# For PostgreSQL: -e KEYWARD_DATABASE_URL=postgres://... (or a file: --env-file).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin keyward \
    && strip target/release/keyward \
    && mkdir -p /out/var/lib/keyward \
    && cp target/release/keyward /out/keyward

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/keyward /usr/local/bin/keyward
# The data folder, owned by the image's non-root user (uid 65532) so that a new volume is too.
COPY --from=build --chown=65532:65532 /out/var/lib/keyward /var/lib/keyward
USER 65532:65532
WORKDIR /var/lib/keyward
VOLUME ["/var/lib/keyward"]
ENV KEYWARD_DATABASE_URL=sqlite:///var/lib/keyward/keyward.db \
    KEYWARD_LISTEN=0.0.0.0:3000
EXPOSE 3000
# Orchestrators probe GET /healthz (alive) and GET /readyz (storage reachable): the image has no
# shell or curl for a HEALTHCHECK of its own.
ENTRYPOINT ["/usr/local/bin/keyward"]
CMD ["serve"]
