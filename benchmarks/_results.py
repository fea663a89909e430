"""Where benchmark results go: one JSON per script under benchmarks/results/ (ignored by git)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(result: dict, out: str | Path) -> Path:
    """Write `result` as JSON to `out` (creating folders) and say where."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return out
