#!/usr/bin/env bash
# Set up (first time only) and run the default study end to end; extra arguments go to `unlearn-study run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${UNLEARN_VENV:-.venv}/bin/unlearn-study" run "$@"
