"""Landmark files: the 300-W `.pts` format (SPEC §6).

Inside the package landmarks are float32 `[N, 2]` arrays of (x, y) pixel
coordinates, 0-based. 300-W files are 1-based (Matlab convention), so the
readers subtract 1 and the writer adds 1: every conversion happens here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: 300-W coordinates are 1-based; ours are 0-based.
PTS_OFFSET = 1.0


def write_pts(path: str | os.PathLike, landmarks: np.ndarray) -> Path:
    """Write 0-based `[N, 2]` landmarks as a 300-W `.pts` file (header, braces, 1-based rows)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"landmarks must have shape [N, 2], got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks must be finite")
    rows = "".join(f"{x + PTS_OFFSET:.4f} {y + PTS_OFFSET:.4f}\n" for x, y in pts)
    path = Path(path)
    path.write_text(f"version: 1\nn_points: {len(pts)}\n{{\n{rows}}}\n")
    return path


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Read a 300-W `.pts` file (header form or bare `x y` rows) as 0-based float32 `[N, 2]`.

    Raises `ValueError` naming the file and the problem when the file is malformed.
    """
    path = Path(path)
    lines = [(i + 1, line.strip()) for i, line in enumerate(path.read_text().splitlines())]
    lines = [(n, line) for n, line in lines if line]

    def fail(problem: str) -> ValueError:
        return ValueError(f"{path}: malformed .pts file: {problem}")

    if not lines:
        raise fail("empty file")
    expected = None
    has_header = any(line.split(":")[0].strip().lower() in ("version", "n_points") for _, line in lines[:3])
    if has_header or lines[0][1] == "{":
        body_start = None
        for k, (n, line) in enumerate(lines):
            if line == "{":
                body_start = k + 1
                break
            key, sep, value = line.partition(":")
            if not sep:
                raise fail(f"line {n}: expected a 'key: value' header line or '{{', got {line!r}")
            if key.strip().lower() == "n_points":
                try:
                    expected = int(value.strip())
                except ValueError:
                    raise fail(f"line {n}: n_points is not an integer: {value.strip()!r}") from None
        if body_start is None:
            raise fail("missing opening '{'")
        if lines[-1][1] != "}":
            raise fail("missing closing '}'")
        body = lines[body_start:-1]
    else:
        body = lines

    rows = []
    for n, line in body:
        fields = line.split()
        if len(fields) != 2:
            raise fail(f"line {n}: expected two numbers 'x y', got {line!r}")
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except ValueError:
            raise fail(f"line {n}: non-numeric row {line!r}") from None
    if not rows:
        raise fail("no points")
    if expected is not None and len(rows) != expected:
        raise fail(f"header says n_points: {expected} but the file has {len(rows)} points")
    pts = np.asarray(rows, dtype=np.float64) - PTS_OFFSET
    if not np.isfinite(pts).all():
        raise fail("non-finite coordinate")
    return pts.astype(np.float32)
