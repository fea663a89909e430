"""The README's notebook example runs as printed, and does what it says (results returned, files only where asked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- notebook example -->"


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    assert MARK in text, "the README lost its notebook example"
    block = text.split(MARK, 1)[1]
    match = re.match(r"\s*```python\n(.*?)```", block, flags=re.S)
    assert match, "the notebook example is not a python code block"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_notebook_example_runs_and_returns_its_results(tmp_path):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    script = tmp_path / "example.py"
    script.write_text(_example())
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    line = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"accuracy 0\.\d{3}, part explainability 0\.\d{3}, location consistency 0\.\d{3}", line), line
    runs = tmp_path / "runs"
    assert (runs / "notebook" / "checkpoints" / "last.safetensors").is_file()
    assert (runs / "explain" / "explainability.json").is_file()  # explain was given out_dir ...
    assert not list(tmp_path.rglob("verification.json"))  # ... verify was not: it wrote nothing


def test_the_package_docstrings_example_names_files_keys_and_functions_that_exist():
    """Issue 26: the example in `explainface.__doc__` once named configs/ecloss.yaml and optim.steps."""
    import inspect

    import explainface as ef
    from explainface.training.config import load_config

    doc = ef.__doc__
    config, overrides = re.search(r'ef\.train\("([^"]+)", "[^"]+", overrides=\[([^\]]*)\]\)', doc).groups()
    assert (ROOT / config).is_file(), config
    load_config(ROOT / config, re.findall(r'"([^"]+)"', overrides))  # unknown keys would raise
    for name in re.findall(r"ef\.(\w+)\(", doc):
        assert callable(getattr(ef, name)), name
    params = inspect.signature(ef.export_synthetic).parameters
    for kw in re.findall(r"ef\.export_synthetic\(([^)]*)\)", doc)[0].split(",")[1:]:
        assert kw.split("=")[0].strip() in params, kw
