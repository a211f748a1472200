#!/usr/bin/env bash
# Set up (first time only) and run the whole test suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${UNLEARN_VENV:-.venv}/bin/python" -m pytest "$@"
