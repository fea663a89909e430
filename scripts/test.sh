#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh) and Chromium where possible, lint, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_browser.sh  # Chromium for the report's browser test; skips (exit 0) where it cannot
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
