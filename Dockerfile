# syntax=docker/dockerfile:1
# check=skip=InvalidDefaultArgInFrom
#
# Every Offload image, from this one file and the repository root as the build context:
#
#   docker build --build-arg IMAGE=gateway  -t offload/gateway .   # the HTTP gateway
#   docker build --build-arg IMAGE=analyzer -t offload/analyzer .  # the analyzer pool
#   docker build --build-arg IMAGE=pusher   -t offload/pusher .    # the pusher pools, the FCM sandbox
#   docker build --build-arg IMAGE=pdfgen   -t offload/pdfgen .    # the pdfgen pool
#   docker build --build-arg IMAGE=platform -t offload/platform .  # beat, the exporter, the `offload` CLI
#
# docker-compose.yml builds them the same way (`build.args.IMAGE`).
#
# How it is put together. One build argument, IMAGE, decides both what is installed and what
# the image runs:
#   builder   installs requirements/${IMAGE}.txt, that image's lock file and nothing else, then
#             the project without dependencies;
#   runtime   what every image shares: Debian's tini as PID 1, the offload user (uid 10001), the
#             prepared metrics directory, the environment, the working directory, the stop signal;
#   pool      what the three Celery pools share on top of that: metrics on 9100, the worker check;
#   gateway, analyzer, pusher, pdfgen, platform
#             one short stage per image holding only what sets it apart, written out literally:
#             its extra Debian packages and directories, environment, ports, HEALTHCHECK and CMD;
#   (last)    `FROM ${IMAGE}`: that image's stage, plus the venv and the sources from the builder,
#             run as 10001. Being the last stage, it is what `docker build` produces.
# A fix to the build, the base image, tini, the user or the environment is made once.
#
# Why the per-image differences are stages and not build arguments: HEALTHCHECK and CMD do not
# expand build arguments in exec form, and the HEALTHCHECK timings not at all. Passing them in as
# environment variables to a shell or an entrypoint script would put a shell between tini and the
# service and give every image the same generic command in `docker inspect`. Leaving them to
# compose and Kubernetes (which do set a command and a check for every service) would leave
# `docker run offload/pdfgen` starting nothing and an image with no health check of its own. As
# stages, each image still declares exactly what it runs and how it is checked, `docker inspect`
# shows it, and tests/ops/test_images.py reads it from here.
# Why one argument and not `--target <image>` plus arguments: a target and a lock file could
# disagree (the gateway's command over pdfgen's packages); a single IMAGE cannot. So build with
# --build-arg IMAGE=..., never with --target: an image's stage alone has no venv and runs as root.
# IMAGE has no default on purpose: without it the build stops ("base name (${IMAGE}) should not
# be blank") instead of quietly building one of the five. The `check` directive above silences
# BuildKit's warning about exactly that.

ARG IMAGE

FROM python:3.11-slim-bookworm AS builder
ARG IMAGE
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install "uv==${UV_VERSION}" && uv venv --python /usr/local/bin/python3.11 /opt/venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the image's lock file changes.
COPY requirements/${IMAGE}.txt requirements/${IMAGE}.txt
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python -r requirements/${IMAGE}.txt
# The project itself, editable: the venv points at /app/services, which the runtime copies.
COPY pyproject.toml README.md ./
COPY services services
RUN uv pip install --python /opt/venv/bin/python --no-deps -e . \
    && python -m compileall -q services

FROM python:3.11-slim-bookworm AS runtime
# tini as PID 1 hands SIGTERM to the service and reaps orphans. Every native library the
# wheels need beyond their own (libc, libgcc_s, libstdc++, zlib) is in the base image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 offload \
    && useradd --system --uid 10001 --gid offload --create-home --home-dir /home/offload \
        --shell /usr/sbin/nologin offload \
    && install -d -o offload -g offload /run/offload /run/offload/metrics
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/run/offload/metrics
WORKDIR /app
# Before any CMD: setting ENTRYPOINT clears a CMD inherited from an earlier stage.
ENTRYPOINT ["tini", "--"]
# Every Offload process stops cleanly on SIGTERM: uvicorn drains open requests (5 s,
# timeout_graceful_shutdown in services/gateway/__main__.py); a Celery pool shuts down warm, taking
# no new messages and letting running tasks finish (give the container a stop grace period past
# the pool's task time limit); beat saves its schedule and exits.
STOPSIGNAL SIGTERM

# --- offload/gateway: FastAPI on uvicorn, /healthz /readyz /metrics on 8000.
# No Celery, reportlab or firebase-admin (requirements/gateway.txt).
FROM runtime AS gateway
# /app/var: the default file storage (var/storage under the working directory) for uploads.
RUN install -d -o offload -g offload /app/var
ENV OFFLOAD_GATEWAY_HOST=0.0.0.0 \
    OFFLOAD_GATEWAY_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "services.ops.healthcheck", "http", "http://127.0.0.1:8000/readyz"]
CMD ["python", "-m", "services.gateway"]

# --- What the Celery pools (analyzer, pusher, pdfgen) share: Prometheus metrics on 9100 and the
# heartbeat check, which fails once the consumer has lost the broker.
FROM runtime AS pool
ENV OFFLOAD_METRICS_PORT=9100 \
    OFFLOAD_METRICS_BIND=0.0.0.0
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "services.ops.healthcheck", "worker"]

# --- offload/analyzer: the analyzer pool.
# No FastAPI, reportlab or firebase-admin (requirements/analyzer.txt).
FROM pool AS analyzer
CMD ["python", "-m", "services.analyzer", "--concurrency", "4", "--hostname", "analyzer@%h"]

# --- offload/pusher: the pusher pools; also runs the FCM sandbox (`python -m
# services.fcm_sandbox`, 9099; its check: `... healthcheck http http://127.0.0.1:9099/sandbox/stats`).
# No FastAPI, reportlab or pypdf (requirements/pusher.txt).
FROM pool AS pusher
EXPOSE 9099
CMD ["python", "-m", "services.pusher", "--concurrency", "2", "--hostname", "pusher@%h"]

# --- offload/pdfgen: the pdfgen pool (reportlab).
# No FastAPI or firebase-admin (requirements/pdfgen.txt).
FROM pool AS pdfgen
# fonts-nanum: the TrueType family reports are set in (Hangul and Latin; services/pdfgen/fonts.py).
# /app/var: the default file storage (var/storage under the working directory) for reports.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-nanum \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o offload -g offload /app/var
CMD ["python", "-m", "services.pdfgen", "--concurrency", "2", "--hostname", "pdfgen@%h"]

# --- offload/platform: beat (the default command), the exporter (`python -m
# services.ops.exporter`, metrics on 9100; its check: `... healthcheck http
# http://127.0.0.1:9100/metrics`) and the `offload` CLI (migrations, topology, DLQs).
# No FastAPI, reportlab or firebase-admin (requirements/platform.txt).
FROM runtime AS platform
ENV OFFLOAD_METRICS_PORT=9100 \
    OFFLOAD_METRICS_BIND=0.0.0.0
EXPOSE 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "services.ops.healthcheck", "beat"]
CMD ["python", "-m", "services.ops.beat"]

# --- The image: its own stage, then the venv and the sources, run as offload (numeric, so
# Kubernetes' runAsNonRoot can verify it).
FROM ${IMAGE}
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app/services /app/services
USER 10001:10001
