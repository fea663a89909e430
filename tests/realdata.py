"""Where the real face data is: $EXPLAINFACE_DATA, else ../shared/data beside the repository.

Tests call `real_data("helen")`; it skips the test with the reason when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("EXPLAINFACE_DATA") or REPO.parent / "shared" / "data")


def real_data(*parts: str) -> Path:
    """The path `<data root>/<parts...>`; skips the calling test when it does not exist."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set EXPLAINFACE_DATA to the folder of the face data sets)")
    return path
