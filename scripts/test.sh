#!/usr/bin/env bash
# Set up (first time only) and run the whole test suite, slow tests included, on two pytest-xdist workers (the
# tests spread one by one; those sharing a module-scoped fixture stay together: tests/conftest.py). Extra arguments
# go to pytest; `-n 0` runs it in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One torch thread per worker: two workers with torch's default two threads each oversubscribe two cores, and spin
# against each other (tests/test_unlearner.py with -n 2: 106 s with two threads each, 61 s with one; docs/test-speed.md).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "${UNLEARN_VENV:-.venv}/bin/python" -m pytest -n "${UNLEARN_TEST_WORKERS:-2}" --dist loadgroup "$@"
