#!/usr/bin/env bash
# Create .venv with explainface installed (editable) plus test dependencies.
#
# PyTorch: if a torch is already importable in .venv it is kept (GPU users can
# install their CUDA build first). Otherwise a machine with an NVIDIA driver
# gets the registry's default build, and a CPU machine gets the pinned CPU
# build (EXPLAINFACE_TORCH overrides the requirement, e.g. "torch==2.13.0").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PY=.venv/bin/python
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    if [ -n "${EXPLAINFACE_TORCH:-}" ]; then spec="$EXPLAINFACE_TORCH"
    elif command -v nvidia-smi >/dev/null 2>&1; then spec="torch>=2.1"
    else spec="torch==2.13.0"; fi
    echo "setup: installing $spec"
    "$PY" -m pip install -q "$spec"
fi
"$PY" -m pip install -q -e ".[${EXPLAINFACE_EXTRAS:-test}]"
echo "setup: ready ($("$PY" -c 'import torch, explainface; print("explainface", explainface.__version__, "torch", torch.__version__)'))"
