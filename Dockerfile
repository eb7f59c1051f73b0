# syntax=docker/dockerfile:1
# StreamHub in a container: the web pages built by Vite, embedded in a release binary, on a
# distroless runtime (glibc and libgcc only, no shell), as a non-root user.
#
#   docker build -t streamhub .
#   docker run -d --name streamhub -p 3000:3000 -v streamhub-data:/data streamhub
#   docker logs streamhub     # the admin token, printed once on the first start
#
# Settings: STREAMHUB_* variables (`docker run -e STREAMHUB_MAX_FPS=30 ...`) or flags after the
# image name (`docker run ... streamhub serve --max-fps 30`); README, "Deploy".

# The pages, as scripts/run.sh builds them (npm ci, then tsc and vite build into web/dist).
FROM node:22-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run -s build

# The release binary; a release build embeds web/dist (crates/streamhub/src/web.rs).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY vendor vendor
COPY --from=web /src/web/dist web/dist
# Symbols stay (names in panic backtraces); the line tables the profile keeps for profiling go.
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p streamhub \
    && cp target/release/streamhub /streamhub
RUN mkdir /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /streamhub /usr/local/bin/streamhub
# The data volume, owned by the image's non-root user (65532): a new named volume takes it over.
COPY --from=build --chown=65532:65532 /data /data
ENV STREAMHUB_BIND=0.0.0.0:3000 \
    STREAMHUB_DB=/data/streamhub.db
VOLUME /data
EXPOSE 3000
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/streamhub"]
CMD ["serve"]
