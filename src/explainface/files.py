"""Writing results safely: write-then-rename (a killed job never leaves half a file), and strict JSON.

Every file a long job publishes (checkpoints, crops, exported faces, results) goes through `atomic_write_*`:
the bytes go to a hidden temporary beside the target (`temporary_path`), then `os.replace` publishes them
in one step. `json_safe` makes results strict JSON (no NaN: JSON has none).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def temporary_path(path: str | os.PathLike) -> Path:
    """A hidden temporary name beside `path`, unique per process: `.<name>.<pid>.tmp`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def is_temporary(path: Path) -> bool:
    """Whether `path` is a temporary `temporary_path` made (a killed run may leave them behind)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary and a rename."""
    path = Path(path)
    tmp = temporary_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, newline: bool = True) -> Path:
    """Write `json_safe(obj)` indented, through a temporary and a rename."""
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=2) + ("\n" if newline else ""))


def json_safe(obj: Any) -> Any:
    """A copy that strict JSON can hold: non-finite floats become None (JSON has no NaN), paths become strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """`path` when it is a regular file; `FileNotFoundError` when nothing is there, `ValueError` naming it when it
    is something else (a FIFO or a device would block a read forever, a folder cannot be read as a file)."""
    import stat

    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {p}") from None
    except (OSError, ValueError) as e:  # a name too long, an embedded NUL byte
        raise ValueError(f"{os.fspath(p)!r}: cannot open ({e})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        article = "an" if what[:1].lower() in "aeiou" else "a"
        raise ValueError(f"{p}: {kind}, not {article} {what} (not read)")
    return p


class ResumableLog:
    """The finished items of a long run, appended (flushed and synced) one JSON line each to `path`, after a first
    line with the run's `settings`: a killed run given the same settings continues from `done` (item key ->
    record). A last line cut short by a kill is dropped (that item is redone); a log with other settings is an
    error that says which differ. No path: nothing is kept."""

    def __init__(self, path: Path | None, settings: dict):
        self.path, self.done = path, {}
        if path is None:
            return
        lines = path.read_text().splitlines() if path.is_file() else []
        if lines:
            try:
                head = json.loads(lines[0])["settings"]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}: not a record log of a run (delete it or use another --out)") from None
            if head != settings:
                diff = sorted(k for k in {*head, *settings} if head.get(k) != settings.get(k))
                raise ValueError(f"{path}: holds the items of a run with other settings ({', '.join(diff)}); "
                                 "re-run the same command, or use another --out")  # fmt: skip
            kept = 1
            for n, line in enumerate(lines[1:], start=2):
                try:
                    rec = json.loads(line)
                    # "pair" / "records": the first ground-truth logs' names for "key" / "record"
                    key = rec["key"] if "key" in rec else rec["pair"]
                    self.done[key] = rec["record"] if "record" in rec else rec["records"]
                except (ValueError, KeyError, TypeError):
                    if n < len(lines):
                        raise ValueError(f"{path}: line {n} is not a record: the log is damaged (delete it or use "
                                         "another --out)") from None  # fmt: skip
                    break  # the last line, cut short by a kill: that item is redone
                kept = n
            if kept < len(lines):  # drop the cut line, so that appends stay parseable
                path.write_text("".join(line + "\n" for line in lines[:kept]))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"settings": settings}) + "\n")

    def add(self, key, record: dict) -> None:
        self.done[key] = record
        if self.path is None:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"key": key, "record": record}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
