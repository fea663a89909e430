"""Messages in one form (issue 26): an input error is `explainface <command>: error: <message>` with exit 1, a
command-line mistake exits 2 with argparse's usage line; never a bare line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    (["experiment", "--out", "{tmp}/e", "--methods", "foo"], 1, "unknown method 'foo'"),
    (["experiment", "--out", "{tmp}/e", "--minutes", "1", "--steps", "3"], 2, "give --minutes or --steps, not both"),
    (["experiment", "--out", "{tmp}/e", "--pairs", "lfw=a", "--pairs", "lfw=b"], 2, "evaluation set 'lfw' given twice"),
    (["experiment", "--out", "{tmp}/e", "--pairs", "lfw"], 2, "expected NAME=PATH"),
    (["why", "--model", "x", "--out", "{tmp}/w", "A"], 2, "give two face images A B"),
    (["why", "--model", "x", "--out", "{tmp}/w", "A", "B", "--methods", "rise:masks=8"], 2, "are for --protocol runs"),
    (["demo", "--out", "{tmp}/d", "--method", "nope"], 1, "nope"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "code", "said"), CASES, ids=[" ".join(c[0][:1] + c[0][3:5]) for c in CASES])
def test_errors_have_one_form(tmp_path, argv, code, said):
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    res = subprocess.run([sys.executable, "-m", "explainface", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == code, res.stderr[-1000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"explainface {argv[0]}: error: ") and said in last, last
    assert "Traceback" not in res.stderr
    if code == 2:
        assert "usage: explainface " + argv[0] in res.stderr
