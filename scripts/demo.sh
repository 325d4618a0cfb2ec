#!/usr/bin/env bash
# The README's first command: set up, then run the demo on the embedded log (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tiptrust demo "$@"
