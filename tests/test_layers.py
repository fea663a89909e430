"""The layers contract: imports go down the pipeline, never up (ARCHITECTURE.md "Layers").

Every import statement of the package is read from the source (module level *and* inside functions, where lazy
imports hide), resolved to the module it names, and mapped to its layer; a module may import from its own layer and
the layers below it. Lazy imports for start-up speed are fine where they go down.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Lowest first. A module belongs to the layer with the longest matching name (the package itself, `explainface`,
#: only by its exact name: the notebook API at the top).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("shared ground", ("explainface.errors", "explainface.files", "explainface.inputs", "explainface.argtypes",
                       "explainface.specs", "explainface.memory", "explainface.stats", "explainface.tiles",
                       "explainface.version", "explainface.metric_table")),  # fmt: skip
    ("readers", ("explainface.readers",)),
    ("part names", ("explainface.parts.labels",)),
    ("synthetic faces", ("explainface.synthetic",)),
    ("faces in photos", ("explainface.faces",)),
    ("face parts", ("explainface.parts",)),
    ("models", ("explainface.models",)),
    ("losses", ("explainface.losses",)),
    ("verification protocol", ("explainface.evaluate.verification", "explainface.evaluate.scoring")),
    ("training", ("explainface.training",)),
    ("evaluation pipelines", ("explainface.evaluate",)),
    ("explanations", ("explainface.explanations",)),
    ("report", ("explainface.report",)),
    ("experiments", ("explainface.experiments",)),
    ("command line and notebook API", ("explainface.cli", "explainface.__main__", "explainface")),
]


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            exact_only = p == "explainface"
            if module == p or (not exact_only and module.startswith(p + ".")):
                if len(p) > best:
                    best, rank = len(p), i
    if rank is None:
        raise KeyError(f"{module} is in no layer: add it to LAYERS (tests/test_layers.py) and ARCHITECTURE.md")
    return rank


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """(imported package module, line) for every import in `source`, wherever it sits."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "explainface"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "explainface":
                continue
            # `from explainface.parts import labels` imports the module explainface.parts.labels
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            out += [(s, node.lineno) for s in subs] or [(target, node.lineno)]
    return out


def violations(src: Path = SRC) -> list[str]:
    files = sorted((src / "explainface").rglob("*.py"))
    known = {module_name(f, src) for f in files}
    bad = []
    for f in files:
        mod = module_name(f, src)
        here = layer_of(mod)
        for target, line in imports_of(f.read_text(), mod, f.name == "__init__.py", known):
            there = layer_of(target)
            if there > here:
                bad.append(f"{f.relative_to(src)}:{line} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})")
    return bad


def test_every_module_has_a_layer():
    files = sorted((SRC / "explainface").rglob("*.py"))
    top = len(LAYERS) - 1
    loose = [module_name(f) for f in files if module_name(f) != "explainface" and layer_of(module_name(f)) == top
             and not module_name(f).startswith(("explainface.cli", "explainface.__main__"))]  # fmt: skip
    assert not loose, f"modules in no layer (add them to LAYERS and ARCHITECTURE.md): {loose}"


def test_imports_go_down_the_pipeline():
    assert violations() == []


def test_the_contract_catches_an_upward_import_even_inside_a_function(tmp_path):
    pkg = tmp_path / "explainface"
    for rel, text in {
        "__init__.py": "",
        "readers/__init__.py": "",
        "readers/images.py": "def f():\n    from explainface.cli.main import main\n    return main\n",
        "parts/__init__.py": "",
        "parts/labels.py": "from explainface.parts import masks\n",  # part names may not use the part masks
        "parts/masks.py": "from explainface.parts import labels\nfrom . import labels as again\n",
        "cli/__init__.py": "",
        "cli/main.py": "import explainface.readers.images\n",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    found = violations(tmp_path)
    assert len(found) == 2, found
    assert any("readers/images.py:2 (readers) imports explainface.cli.main" in v for v in found)
    assert any("parts/labels.py:1 (part names) imports explainface.parts.masks (face parts)" in v for v in found)


@pytest.mark.parametrize(("module", "layer"), [
    ("explainface", "command line and notebook API"),
    ("explainface.evaluate.verification_pipeline", "evaluation pipelines"),
    ("explainface.evaluate.verification", "verification protocol"),
    ("explainface.evaluate.scoring", "verification protocol"),
    ("explainface.parts.labels", "part names"), ("explainface.parts.swap", "face parts"),
])  # fmt: skip
def test_a_module_belongs_to_its_most_specific_layer(module, layer):
    assert LAYERS[layer_of(module)][0] == layer
