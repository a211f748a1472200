#!/usr/bin/env bash
# Set up (first time only) and run the whole test suite, slow tests included, on two pytest-xdist workers (the
# tests spread one by one; those sharing a module-scoped fixture stay together: tests/conftest.py). Extra arguments
# go to pytest; `-n 0` runs it in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${UNLEARN_VENV:-.venv}/bin/python" -m pytest -n "${UNLEARN_TEST_WORKERS:-2}" --dist loadgroup "$@"
