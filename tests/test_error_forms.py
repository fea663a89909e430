"""Messages in one form (issue 26): an input error is `explainface <command>: error: <message>` with exit 1, a
command-line mistake exits 2 with argparse's usage line; never a bare line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = [
    (["experiment", "--out", "{tmp}/e", "--methods", "foo"], 1, "unknown method 'foo'"),
    (["experiment", "--out", "{tmp}/e", "--minutes", "1", "--steps", "3"], 2, "give --minutes or --steps, not both"),
    (["experiment", "--out", "{tmp}/e", "--pairs", "lfw=a", "--pairs", "lfw=b"], 2, "evaluation set 'lfw' given twice"),
    (["experiment", "--out", "{tmp}/e", "--pairs", "lfw"], 2, "expected NAME=PATH"),
    (["why", "--model", "x", "--out", "{tmp}/w", "A"], 2, "give two face images A B"),
    (["why", "--model", "x", "--out", "{tmp}/w", "A", "B", "--methods", "rise:masks=8"], 2, "are for --protocol runs"),
    (["demo", "--out", "{tmp}/d", "--method", "nope"], 1, "nope"),
    # every other command: one input error and one command-line mistake each
    (["crop", "{tmp}/nowhere", "{tmp}/c"], 1, "image folder root does not exist"),
    (["parts", "{tmp}/nowhere", "--out", "{tmp}/p.png"], 1, "not a folder"),
    (["verify", "--model", "{tmp}/m.safetensors", "--pairs", "{tmp}/p.txt"], 2, "required: --out"),
    (["train", "--config", "{tmp}/none.yaml", "--out", "{tmp}/t"], 1, "config file not found"),
    (["train", "--config", "configs/cpu/vgg16_bn_softmax.yaml", "optim.lr=1", "--out", "{tmp}/t", "optim.lr=-1"], 1,
     "optim.lr: must be a number > 0, got -1 (override 'optim.lr=-1')"),  # an override after an option is one
    (["retrofit", "--model", "dlib_resnet", "--faces", "{tmp}/none", "--out", "{tmp}/r"], 1, "face folder not found"),
    (["explain", "--model", "{tmp}/m.safetensors", "--out", "{tmp}/x"], 2, "required: --faces"),
    (["visualize", "--model", "{tmp}/m.safetensors", "--out", "{tmp}/v"], 2, "required: --faces"),
    (["report", "--model", "{tmp}/m.safetensors", "--out", "{tmp}/r"], 1, "checkpoint not found"),
    (["synth", "--out", "{tmp}/s", "--identities", "-3"], 2, "must be an integer >= 0, got -3"),
    (["templates", "--k", "0"], 2, "must be an integer >= 1, got 0"),
    (["models", "--bogus"], 2, "unrecognized arguments: --bogus"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "code", "said"), CASES, ids=[" ".join(c[0][:1] + c[0][3:5]) for c in CASES])
def test_errors_have_one_form(tmp_path, argv, code, said):
    """Every command: `explainface <command>: error: ...` as the last line, exit 1 (input) or 2 (usage)."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    res = subprocess.run([sys.executable, "-m", "explainface", *args], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert res.returncode == code, res.stderr[-1000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"explainface {argv[0]}: error: ") and said in last, last
    assert "Traceback" not in res.stderr
    if code == 2:
        assert "usage: explainface " + argv[0] in res.stderr


@pytest.mark.parametrize(("word", "is_override"), [("optim.lr=0.01", True), ("regularizers=[]", True),
                                                   ("--out=x", False), ("=1", False), ("x.jpg", False)])  # fmt: skip
def test_a_key_value_word_after_an_option_is_an_override(word, is_override):
    from explainface.cli.main import _is_override

    assert _is_override(word) is is_override
