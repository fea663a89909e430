#!/usr/bin/env bash
# The fuzz tests with many more examples than the test command tries (HYPOTHESIS_PROFILE=long): a separate run.
set -euo pipefail
cd "$(dirname "$0")/.."
HYPOTHESIS_PROFILE=long exec .venv/bin/python -m pytest -q tests/test_fuzz_*.py "$@"
