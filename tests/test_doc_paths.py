"""Docs that name the code name code that exists: every backticked dotted path in docs/, the README, ARCHITECTURE.md
and the package's docstrings and comments that starts with a name of ours (a package or module of explainface, the
notebook alias ``ef``, a config section) resolves: to a module and its attributes, or to a config key
(``optim.lr``). File names (``why.json``) and other libraries' names (``torch.load``) are not ours and not checked.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "explainface"
DOTTED = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?`")
#: Former module names (now elsewhere): a doc that still uses one is flagged.
FORMER = {"part_masks", "data", "explain", "experiment_html", "part_swap"}
FILE_EXTENSIONS = {"json", "jsonl", "md", "png", "py", "yaml", "txt", "csv", "html", "safetensors", "idx", "rec", "dat",
                   "cpp", "cc", "pth", "pts", "bin", "npz", "log", "sh"}  # fmt: skip


@cache
def modules() -> dict[str, list[str]]:
    """Short name -> full module names: 'why' -> ['explainface.explanations.why'], 'faces' -> [...]."""
    out: dict[str, list[str]] = {}
    for f in PACKAGE.rglob("*.py"):
        parts = ["explainface", *f.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__":
            continue
        full = ".".join(parts)
        for k in range(1, len(parts)):  # every tail: 'explanations.why' and 'why'
            out.setdefault(".".join(parts[k:]), []).append(full)
        out.setdefault("explainface", ["explainface"])
    return out


def _config_sections() -> set[str]:
    from explainface.training.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def _resolves_in_code(path: str) -> bool:
    names = path.split(".")
    if names[0] == "ef":
        names = ["explainface", *names[1:]]
    for k in range(len(names), 0, -1):
        for full in modules().get(".".join(names[:k]), []):
            break_ok = False
            try:
                obj = importlib.import_module(full)
            except ImportError:
                continue
            rest = names[k:]
            for i, attr in enumerate(rest):
                if dataclasses.is_dataclass(obj) and isinstance(obj, type) and i == len(rest) - 1 \
                        and attr in {f.name for f in dataclasses.fields(obj)}:  # fmt: skip
                    break_ok = True
                    break
                if not hasattr(obj, attr):
                    # a submodule not imported by its package yet
                    try:
                        obj = importlib.import_module(f"{full}.{'.'.join(rest[: i + 1])}")
                        continue
                    except ImportError:
                        break
                obj = getattr(obj, attr)
            else:
                return True
            if break_ok:  # a dataclass field without a class default
                return True
    return False


def _resolves_outside(path: str) -> bool:
    """The standard library's or another installed package's name (`random.sample`): not ours."""
    first, *rest = path.split(".")
    if first in modules() and any(m == f"explainface.{first}" for m in modules()[first]):
        return False  # a top-level module of ours shadows nothing here
    try:
        obj = importlib.import_module(first)
    except ImportError:
        return False
    if getattr(obj, "__file__", "") and str(PACKAGE) in str(obj.__file__):
        return False
    for attr in rest:
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def _resolves_in_config(path: str) -> bool:
    from explainface.training.config import TrainConfig

    obj = TrainConfig()
    for attr in path.split("."):
        if not dataclasses.is_dataclass(obj) or attr not in {f.name for f in dataclasses.fields(obj)}:
            return False
        obj = getattr(obj, attr)
    return True


def is_ours(path: str) -> bool:
    first, last = path.split(".")[0], path.split(".")[-1]
    if last in FILE_EXTENSIONS:
        return False
    return first in modules() or first in ("ef", "explainface") or first in _config_sections() or first in FORMER


def resolves(path: str) -> bool:
    if _resolves_in_code(path) or _resolves_in_config(path) or _resolves_outside(path):
        return True
    first, *rest = path.split(".")
    if first == "model" and len(rest) == 1:  # a network object's own attribute (nn.Module's)
        import torch

        return hasattr(torch.nn.Module, rest[0])
    return False


def texts() -> list[tuple[str, str]]:
    """(where, text): the Markdown docs, and each docstring and comment block of the package."""
    out = [(str(p.relative_to(ROOT)), p.read_text()) for p in
           [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "ARCHITECTURE.md"]]  # fmt: skip
    for f in sorted(PACKAGE.rglob("*.py")):
        source = f.read_text()
        rel = str(f.relative_to(ROOT))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out.append((f"{rel} ({getattr(node, 'name', 'module')} docstring)", doc))
        out.append((f"{rel} (comments)", "\n".join(ln for ln in source.splitlines() if ln.strip().startswith("#"))))
    return out


def broken_paths() -> list[str]:
    bad = []
    for where, text in texts():
        for m in DOTTED.finditer(text):
            path = m.group(1)
            if is_ours(path) and not resolves(path):
                bad.append(f"{where}: `{path}`")
    return bad


def test_every_dotted_path_of_ours_in_the_docs_resolves():
    bad = broken_paths()
    assert not bad, "names that no longer exist:\n" + "\n".join(bad)


@pytest.mark.parametrize(("path", "ok"), [
    ("explanations.groundtruth.ground_truth", True), ("faces.landmarks.crop_landmarks", True), ("why", None),
    ("optim.lr", True), ("ef.why", True), ("model.named_modules", True), ("readers.landmarks.read_pts", True),
    ("data.part_masks.part_masks", False), ("explanations.why.no_such_function", False), ("optim.learning_rate", False),
    ("faces.part_swap", False), ("part_masks.face_parts_for_crop", False), ("random.sample", True),
    ("explainface.parts.masks.FaceFrame.scale", True),
    ("explainface.parts.masks.FaceFrame.nothing", False),
])  # fmt: skip
def test_the_check_resolves_ours_and_flags_what_is_gone(path, ok):
    if ok is None:  # not dotted: never a candidate
        assert DOTTED.fullmatch(f"`{path}`") is None
        return
    assert is_ours(path)
    assert resolves(path) is ok


def test_file_names_and_other_libraries_are_not_checked():
    assert not is_ours("why.json") and not is_ours("torch.load") and not is_ours("nn.Module")


def test_code_says_what_a_thing_is_not_which_issue_added_it():
    """Docstrings and comments of the package name no issue numbers (the history is in git and the docs)."""
    found = [f"{where}: {m.group(0)!r}" for where, text in texts() if where.startswith("src/")
             for m in re.finditer(r"[Ii]ssue \d+", text)]  # fmt: skip
    assert not found, "\n".join(found)
