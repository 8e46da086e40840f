#!/usr/bin/env bash
# Regenerate constraints.txt, the lock scripts/install.sh pins to: install the harness unpinned
# (HARNESS_UNPINNED=1) into a fresh virtual environment and freeze what it holds, without the project.
#   TORCH_SPEC="torch==2.13.0" bash scripts/lock.sh     # torch at the tested release, the rest newest allowed
#   bash scripts/lock.sh                                # torch too (on Linux PyPI's torch is a CUDA build:
#                                                       # its nvidia-* packages then enter the lock, harmless
#                                                       # on CPU machines, where nothing installs them)
# PYTHON picks the interpreter the environment is made from (default: python). Local version labels
# (torch's +cpu, +cu124) are dropped, so `torch==2.13.0` matches every build of that release.
# Run the test suite against the new lock before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"${PYTHON:-python}" -m venv "$scratch/venv"
PATH="$scratch/venv/bin:$PATH" HARNESS_UNPINNED=1 bash scripts/install.sh

{
    echo "# Exact versions scripts/install.sh pins to (pip constraints). Regenerate: bash scripts/lock.sh"
    echo "# Made with $("$scratch/venv/bin/python" --version) on $(uname -sm)."
    # --all keeps setuptools (a torch dependency); pip itself came with the environment, not the install.
    "$scratch/venv/bin/python" -m pip freeze --all --exclude-editable | grep -v '^pip==' \
        | sed -E 's/^([^=]+==[^+]+)\+.*$/\1/'
} > "$scratch/constraints.txt"
mv "$scratch/constraints.txt" constraints.txt
echo "wrote constraints.txt ($(grep -c '==' constraints.txt) packages)"
