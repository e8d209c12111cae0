# One image per service, each a target of this file:
#   docker build --target auth    -t todo-platform/auth .
#   docker build --target todo    -t todo-platform/todo .
#   docker build --target chat    -t todo-platform/chat .
#   docker build --target gateway -t todo-platform/gateway .
#   docker build --target web     -t todo-platform/web .
# Each holds the Python runtime, the locked dependencies of the shared library plus that
# service's extra, and only shared/ and the service's own package: no uv, no compiler, no
# secret. Settings come from the environment; the signing key from a mounted secret file.

# Base images are build arguments (a machine without a registry passes local stand-ins); the
# defaults are the public images. `COPY --from=` takes no ARG, hence the named uv stage.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- build: one virtual environment per service, from uv.lock ---------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# strip (binutils), for this stage only: the wheels' extension modules carry debug symbols,
# about 45 MB of each image. The base image's Debian release fixes the version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
COPY pyproject.toml uv.lock ./

FROM build AS build-auth
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra auth \
    && find .venv -name "*.so*" -type f -exec strip --strip-unneeded {} +
COPY shared/ shared/
COPY auth_service/ auth_service/
# Compiled here: the running container's file system is read-only.
RUN python -m compileall -q shared auth_service

FROM build AS build-todo
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra todo \
    && find .venv -name "*.so*" -type f -exec strip --strip-unneeded {} +
COPY shared/ shared/
COPY todo_service/ todo_service/
RUN python -m compileall -q shared todo_service

FROM build AS build-chat
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra chat \
    && find .venv -name "*.so*" -type f -exec strip --strip-unneeded {} +
COPY shared/ shared/
COPY chat_service/ chat_service/
RUN python -m compileall -q shared chat_service

FROM build AS build-gateway
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra gateway \
    && find .venv -name "*.so*" -type f -exec strip --strip-unneeded {} +
COPY shared/ shared/
COPY gateway/ gateway/
RUN python -m compileall -q shared gateway

FROM build AS build-web
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra web \
    && find .venv -name "*.so*" -type f -exec strip --strip-unneeded {} +
COPY shared/ shared/
COPY web_service/ web_service/
RUN python -m compileall -q shared web_service

# ---- runtime: what every service image shares ------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it without a name lookup.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
# HOST: listen on every interface of the container. ENVIRONMENT: production unless told
# otherwise, so no development default (a generated key, readable logs) applies by accident.
# WEB_CONCURRENCY: uvicorn workers per container; scale with replicas first (one metrics
# listener per container).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    WEB_CONCURRENCY=1 \
    ENVIRONMENT=production
WORKDIR /app
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PORT'] + '/healthz', timeout=4)"]

FROM runtime AS auth
COPY --from=build-auth /app /app
ENV PORT=8001 \
    AUTH_METRICS_PORT=9001 \
    AUTH_METRICS_HOST=0.0.0.0
EXPOSE 8001 9001
CMD ["python", "-m", "auth_service"]

FROM runtime AS todo
COPY --from=build-todo /app /app
ENV PORT=8002 \
    TODO_METRICS_PORT=9002 \
    TODO_METRICS_HOST=0.0.0.0
EXPOSE 8002 9002
CMD ["python", "-m", "todo_service"]

FROM runtime AS chat
COPY --from=build-chat /app /app
ENV PORT=8003 \
    CHAT_METRICS_PORT=9003 \
    CHAT_METRICS_HOST=0.0.0.0
EXPOSE 8003 9003
CMD ["python", "-m", "chat_service"]

FROM runtime AS gateway
COPY --from=build-gateway /app /app
ENV PORT=8000 \
    GATEWAY_METRICS_PORT=9000 \
    GATEWAY_METRICS_HOST=0.0.0.0
EXPOSE 8000 9000
CMD ["python", "-m", "gateway"]

FROM runtime AS web
COPY --from=build-web /app /app
ENV PORT=8004 \
    WEB_METRICS_PORT=9004 \
    WEB_METRICS_HOST=0.0.0.0
EXPOSE 8004 9004
CMD ["python", "-m", "web_service"]
