#!/usr/bin/env bash
# The demo command: set up, then replicate real images between two local registries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTHONPATH=. exec .venv/bin/python scripts/demo.py "$@"
