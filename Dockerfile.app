# Dockerfile.app -- the reqstats FastCGI service (master, workers, test runner).
#
# Two stages on Debian 12: the build stage installs the -dev packages and
# runs the project's own `make` (the release build, build/reqstats); the
# runtime stage holds only the shared libraries and that binary.
#
# The binary is PID 1 and needs no init: its master handles SIGTERM itself
# (it removes the socket, lets every child flush its held hits and exits
# within SHUTDOWN_TIMEOUT_MS, 8 s by default, inside compose's 10 s grace)
# and reaps its own children; it starts no other programs.
#
# It runs as uid/gid 10001 (reqstats), the same ids Dockerfile.nginx uses,
# so nginx can reach the unix socket (mode 0660) in the volume shared at
# /run/reqstats, and the runner can reach nginx's socket in the volume
# shared at /run/reqstats-http. Both directories are created here with that
# owner, so a fresh named volume mounted on one starts with that owner too.

FROM debian:bookworm-slim AS build

# gcc only recommends libc6-dev, which --no-install-recommends leaves out.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make \
        libfcgi-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Makefile ./
COPY app/ app/
RUN make -j"$(nproc)" \
 && strip --strip-debug build/reqstats


FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libfcgi0ldbl libhiredis0.14 libjansson4 libcurl4 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 reqstats \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin reqstats \
 && install -d -o 10001 -g 10001 -m 0750 /run/reqstats /run/reqstats-http

COPY --from=build /src/build/reqstats /usr/local/bin/reqstats

# Fail the build, not the first start, if a shared library is missing.
RUN reqstats --version

# Defaults for the container; docker-compose.yml sets them explicitly.
ENV FCGI_LISTEN=unix:/run/reqstats/app.sock \
    FCGI_SOCKET_MODE=0660

USER 10001:10001
STOPSIGNAL SIGTERM

# Connects to the FastCGI socket (nothing is counted) and PINGs Redis.
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
    CMD ["reqstats", "--health"]

# Options (--check-config, --health, --help) can be given to `docker run`.
ENTRYPOINT ["reqstats"]
