# syntax=docker/dockerfile:1
# One image for every ktrdr service; the torch build is chosen at build time.
#
#   CPU image (api, migrate, research worker, Flower; a CPU-only trainer):
#     docker build -t ktrdr-agent-pipeline:cpu .
#   CUDA image (gpu worker): torch from PyPI, whose Linux x86_64 wheel is the CUDA build
#   (it brings its own CUDA runtime libraries; the host needs only the NVIDIA driver + container toolkit):
#     docker build -t ktrdr-agent-pipeline:gpu --build-arg TORCH_INDEX_URL= .
#   A specific CUDA build: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#
# docker-compose.yml builds both tags.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
# Empty = PyPI (CUDA build on Linux); default = the CPU wheel index (about 10x smaller).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KTRDR_HOME=/data/ktrdr

WORKDIR /app

# torch first and pinned, in its own layer: `pip install .` would otherwise resolve an open torch
# requirement to the newest multi-GB CUDA build. Changing the app's code does not rebuild this layer.
RUN pip install "torch==${TORCH_VERSION}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}

COPY pyproject.toml README.md ./
COPY agent_pipeline ./agent_pipeline
# torch is already satisfied, so this installs only the pipeline and its other dependencies.
RUN pip install . \
    && python -c "import torch, agent_pipeline.cli; print('torch', torch.__version__)"

# An unprivileged user owning the shared KTRDR_HOME (a fresh named volume copies this ownership).
RUN useradd --create-home --uid 1000 ktrdr \
    && mkdir -p /data/ktrdr \
    && chown -R ktrdr:ktrdr /data/ktrdr
USER ktrdr
WORKDIR /home/ktrdr

EXPOSE 8000 5555
CMD ["ktrdr", "--help"]
