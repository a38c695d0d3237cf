# Dockerfile — owns Whisper's container image (README, "Docker"; compose.yaml runs it).
#
#   builder  compiles the release binary (`cargo build --release --locked`) with BuildKit cache
#            mounts for crates.io downloads and target/, so a rebuild compiles only what changed;
#   runtime  a Debian slim image with the binary, static/ and templates/ (BASE_DIR=/app), run as
#            the unprivileged user `whisper` (uid 10001), with a HEALTHCHECK on /healthz.
#
# ENTRYPOINT is the binary, so the container takes ./manage's subcommands as manage.py would:
#   docker compose run --rm whisper migrate
#   docker compose run --rm whisper createsuperuser
# and with no arguments serves `runserver 0.0.0.0:8000`.
#
# Base images are build arguments; the defaults are the usual public images. tests/docker.rs
# builds this file with images it made from Debian's packages (no registry is reachable there).
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 on 18.09–20.10).
ARG BUILDER_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS builder
# The sources are bind-mounted, not copied (a change still re-runs the step: the mount is part of
# its cache key), and target/ is a cache mount, so the stage is one layer: with a copying
# storage driver (vfs) every layer is a full copy of the toolchain image. The binary, with what
# the runtime reads, is copied out into /out, which the runtime stage copies in one layer.
RUN --mount=type=bind,target=/src \
    --mount=type=cache,id=whisper-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=whisper-release-target,target=/target,sharing=locked \
    cd /src \
    && CARGO_TARGET_DIR=/target cargo build --release --locked --bin whisper \
    && mkdir -p /out/usr/local/bin /out/app \
    && install -m 0755 /target/release/whisper /out/usr/local/bin/whisper \
    && cp -R static templates /out/app/

FROM ${RUNTIME_IMAGE}
RUN groupadd --system --gid 10001 whisper \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin whisper \
    && mkdir -p /app/data && chown whisper:whisper /app/data
COPY --from=builder /out/ /
# BASE_DIR: static/ and templates/ (and .env, if one is mounted) are read from /app. Without a
# DATABASE_URL the container uses SQLite in /app/data (mount a volume there to keep it).
# HEALTHCHECK_PORT: the port the health check probes; change it with runserver's.
ENV BASE_DIR=/app \
    DATABASE_URL=sqlite:////app/data/db.sqlite3 \
    HEALTHCHECK_PORT=8000
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# GET /healthz over bash's /dev/tcp (the image has no curl): healthy on 200 — the database
# answers — and unhealthy on 503 or no answer. The Host header must pass ALLOWED_HOSTS, so it is
# HEALTHCHECK_HOST, else the first ALLOWED_HOSTS entry (".example.com" → "example.com"; "*" or
# none → "localhost").
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["bash", "-c", "h=${ALLOWED_HOSTS:-localhost}; h=${h%%,*}; h=${h// /}; h=${h#.}; [ \"$h\" = '*' ] && h=localhost; h=${HEALTHCHECK_HOST:-${h:-localhost}}; exec 3<>/dev/tcp/127.0.0.1/${HEALTHCHECK_PORT:-8000} && printf 'GET /healthz HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' \"$h\" >&3 && read -r -t 4 _ status _ <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["whisper"]
CMD ["runserver", "0.0.0.0:8000"]
