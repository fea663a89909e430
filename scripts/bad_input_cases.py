#!/usr/bin/env python
"""Re-run the bad-input cases of issues 15 and 26 through the installed command line and print what each ends in.

Each case is a command line on a small fixture (a synthetic export, a tiny untrained checkpoint, broken files made
here) with what a user should get: ``error`` (one ``explainface <command>: error: ...`` line, exit status != 0,
no traceback) or ``ok`` (exit status 0). The outcome of a run is one of

* ``clean``: an error without a traceback (right for an ``error`` case),
* ``ok``: exit status 0 (right for an ``ok`` case; for an ``error`` case the input was silently accepted),
* ``traceback``: a Python traceback was printed,
* ``hang``: still running after the time limit (killed).

    .venv/bin/python scripts/bad_input_cases.py --out runs/bad_inputs            # this checkout
    .venv/bin/python scripts/bad_input_cases.py --out runs/bad_inputs_before --src /tmp/old/src   # another tree

writes ``cases.json`` (and prints a table). `--src` runs another source tree's package (an older commit checked
out with ``git worktree``) with this environment's dependencies, to compare before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TINY = ["model.name=vgg13", "model.width=0.0625", "model.input_size=56", "data.identities=8", "data.per_identity=4",
        "data.workers=0", "optim.batch_size=8", "optim.warmup_steps=1", "optim.max_steps=2", "run.log_every=1",
        "val.pairs=null"]  # fmt: skip


def fixtures(root: Path) -> dict[str, str]:
    """Make the files the cases read: a synthetic export, a tiny checkpoint, broken images and pair files."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import numpy as np

    from checkpoints import tiny_checkpoint
    from explainface.readers.landmarks import read_pts, write_pts
    from explainface.synthetic.export import export_synthetic

    root.mkdir(parents=True, exist_ok=True)
    exp = root / "export"
    if not (exp / "heldout" / "pairs.txt").is_file():
        export_synthetic(exp, 0, 4, size=112, heldout_identities=20, progress=False, pairs_per_fold=3)
    ckpt = tiny_checkpoint(root / "tiny.safetensors", input_size=112)
    f = {
        "export": str(exp),
        "heldout": str(exp / "heldout"),
        "pairs": str(exp / "heldout" / "pairs.txt"),
        "ckpt": str(ckpt),
    }
    images = sorted((exp / "heldout").rglob("*.jpg"))
    # broken copies of the held-out folder: a zero-byte image, a text file saved as .jpg, a truncated JPEG
    for name, damage in (("zero", b""), ("text", b"this is not an image"), ("trunc", None)):
        d = root / f"heldout_{name}"
        if not d.exists():
            shutil.copytree(exp / "heldout", d)
            first = sorted(d.rglob("*.jpg"))[0]
            first.write_bytes(first.read_bytes()[:300] if damage is None else damage)
        f[f"heldout_{name}"], f[f"pairs_{name}"] = str(d), str(d / "pairs.txt")
    (exp / "heldout" / "pairs_bom.txt").write_bytes(b"\xef\xbb\xbf" + (exp / "heldout" / "pairs.txt").read_bytes())
    f["pairs_bom"] = str(exp / "heldout" / "pairs_bom.txt")
    a, b, c = (p.relative_to(exp / "heldout").as_posix() for p in images[:3])
    (root / "one_pair.csv").write_text(f"{a},{b},1\n")
    (root / "same_only.csv").write_text("".join(f"{x},{y},1\n" for x, y in [(a, b)] * 12))
    (root / "two_pairs.csv").write_text(f"{a},{b},1\n{a},{c},0\n")
    for k in ("one_pair", "same_only", "two_pairs"):
        f[k] = str(root / f"{k}.csv")
    (root / "random.safetensors").write_bytes(os.urandom(4096))
    (root / "text.safetensors").write_text('{"config": 1}')
    f["ckpt_random"], f["ckpt_text"] = str(root / "random.safetensors"), str(root / "text.safetensors")
    wide = tiny_checkpoint(root / "wide.safetensors", width=0.25, input_size=112)
    from safetensors.torch import load_file, save_file

    narrow = load_file(str(ckpt))
    meta = json.loads(json.dumps(_metadata(wide)))
    save_file(narrow, str(root / "mismatch.safetensors"), metadata=meta)  # width-0.125 weights, width-0.25 config
    f["ckpt_mismatch"] = str(root / "mismatch.safetensors")
    nan = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v for k, v in narrow.items()}
    save_file(nan, str(root / "nan.safetensors"), metadata=_metadata(ckpt))
    f["ckpt_nan"] = str(root / "nan.safetensors")
    # landmarks: a folder whose .pts lie far outside their images
    far = root / "far_landmarks"
    far.mkdir(exist_ok=True)
    for p in images[:2]:
        shutil.copy(p, far / p.name)
        write_pts(far / (p.stem + ".pts"), read_pts(p.with_suffix(".pts")) + 5000)
    one = root / "one_point_1e9"
    one.mkdir(exist_ok=True)
    shutil.copy(images[0], one / images[0].name)
    lm = read_pts(images[0].with_suffix(".pts"))
    lm[0, 0] = 1e9
    write_pts(one / (images[0].stem + ".pts"), lm)
    f["far_landmarks"], f["one_point_1e9"] = str(far), str(one)
    cfg_dir = root / "configs"
    cfg_dir.mkdir(exist_ok=True)
    (cfg_dir / "broken.yaml").write_text("model: {name: vgg13\n  width: [")
    (cfg_dir / "self.yaml").write_text("base: self.yaml\n")
    f["cfg_broken"], f["cfg_self"] = str(cfg_dir / "broken.yaml"), str(cfg_dir / "self.yaml")
    _fixtures_26(root, f, images)
    del np
    return f


def _fixtures_26(root: Path, f: dict[str, str], images: list[Path]) -> None:
    """Issue 26's fixtures: FIFOs where files are read, a 2-step run to resume, a dictionary of another network,
    an empty verification result, a face folder with a FIFO image."""
    import os

    fifos = root / "fifos"
    fifos.mkdir(exist_ok=True)
    for name in ("x.jpg", "dict.json", "ver.json", "pairs.txt"):
        if not (fifos / name).exists():
            os.mkfifo(fifos / name)
        f[f"fifo_{name.split('.')[0]}"] = str(fifos / name)
    faces = root / "faces_with_fifo" / "person"
    faces.mkdir(parents=True, exist_ok=True)
    for p in images[:2]:
        shutil.copy(p, faces / p.name)
        shutil.copy(p.with_suffix(".pts"), faces / (p.stem + ".pts"))
    if not (faces / "fifo.jpg").exists():
        os.mkfifo(faces / "fifo.jpg")
    f["faces_with_fifo"] = str(faces.parent)
    (root / "ver_empty.json").write_text('{"thresholds": []}')
    f["ver_empty"] = str(root / "ver_empty.json")
    # a channel dictionary of a 32-channel network (the tiny checkpoint's target layer has more)
    (root / "dict32.json").write_text(json.dumps({"layer": "features.relu5_3", "channels": [
        {"channel": c, "part": "eyes"} for c in range(32)]}))  # fmt: skip
    f["dict32"] = str(root / "dict32.json")
    run = root / "run2"
    if not (run / "checkpoints" / "last.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "explainface", "train", "--config", "configs/cpu/vgg16_bn_softmax.yaml",
                        "--out", str(run), *TINY], check=True, capture_output=True)  # fmt: skip
    f["run2"] = str(run)


def _metadata(path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return dict(fh.metadata() or {})


def cases(f: dict[str, str], out: Path) -> list[tuple[str, str, list[str], str]]:
    """(name, expected, argv after `explainface`, the defect: issue 15's number, or 26.<item>) for every case."""
    o = str(out / "work")
    v = ["verify", "--model", f["ckpt"], "--out"]
    tr = ["train", "--config", "configs/cpu/vgg16_bn_softmax.yaml", "--out"]
    return [
        ("verify: pair file missing", "error", [*v, o + "/v1", "--pairs", "/nonexistent/pairs.txt"], "1"),
        (
            "verify: checkpoint missing",
            "error",
            ["verify", "--model", "/nonexistent.safetensors", "--pairs", f["pairs"], "--out", o + "/v2"],
            "4",
        ),  # fmt: skip
        (
            "verify: checkpoint of random bytes",
            "error",
            ["verify", "--model", f["ckpt_random"], "--pairs", f["pairs"], "--out", o + "/v3"],
            "4",
        ),  # fmt: skip
        (
            "verify: checkpoint of JSON text",
            "error",
            ["verify", "--model", f["ckpt_text"], "--pairs", f["pairs"], "--out", o + "/v4"],
            "4",
        ),  # fmt: skip
        (
            "verify: weights of another width",
            "error",
            ["verify", "--model", f["ckpt_mismatch"], "--pairs", f["pairs"], "--out", o + "/v5"],
            "4",
        ),  # fmt: skip
        (
            "verify: all-NaN weights",
            "error",
            ["verify", "--model", f["ckpt_nan"], "--pairs", f["pairs"], "--out", o + "/v6"],
            "3",
        ),  # fmt: skip
        (
            "verify: a zero-byte image",
            "ok",
            [*v, o + "/v7", "--pairs", f["pairs_zero"], "--root", f["heldout_zero"]],
            "1",
        ),  # fmt: skip
        (
            "verify: text saved as .jpg",
            "ok",
            [*v, o + "/v8", "--pairs", f["pairs_text"], "--root", f["heldout_text"]],
            "1",
        ),  # fmt: skip
        (
            "verify: a truncated JPEG",
            "ok",
            [*v, o + "/v9", "--pairs", f["pairs_trunc"], "--root", f["heldout_trunc"]],
            "1",
        ),  # fmt: skip
        (
            "verify: pairs.txt with a byte-order mark",
            "ok",
            [*v, o + "/v10", "--pairs", f["pairs_bom"], "--root", f["heldout"]],
            "9",
        ),  # fmt: skip
        ("verify: one-pair CSV", "error", [*v, o + "/v11", "--pairs", f["one_pair"], "--root", f["heldout"]], "3"),
        (
            "verify: CSV of same-identity pairs only",
            "ok",
            [*v, o + "/v12", "--pairs", f["same_only"], "--root", f["heldout"]],
            "3",
        ),  # fmt: skip
        (
            "verify: --device cuda (CPU build)",
            "error",
            [*v, o + "/v13", "--pairs", f["pairs"], "--device", "cuda"],
            "5",
        ),
        ("verify: --device bogus", "error", [*v, o + "/v14", "--pairs", f["pairs"], "--device", "bogus"], "5"),
        ("verify: --batch 0", "error", [*v, o + "/v15", "--pairs", f["pairs"], "--batch", "0"], "5"),
        ("verify: --batch -1", "error", [*v, o + "/v16", "--pairs", f["pairs"], "--batch", "-1"], "5"),
        ("train: optim.lr=abc", "error", [*tr, o + "/t1", *TINY, "optim.lr=abc"], "6"),
        ("train: optim.batch_size=-1", "error", [*tr, o + "/t2", *TINY, "optim.batch_size=-1"], "6"),
        ("train: optim.batch_size=0", "error", [*tr, o + "/t3", *TINY, "optim.batch_size=0"], "6"),
        ("train: optim.epochs=0", "error", [*tr, o + "/t4", *TINY, "optim.max_steps=null", "optim.epochs=0"], "6"),
        ("train: optim.max_steps=-15", "error", [*tr, o + "/t5", *TINY, "optim.max_steps=-15"], "6"),
        # an error in issue 15; since the retrofit, 0 steps saves the initial (e.g. pretrained) network on purpose
        ("train: optim.max_steps=0", "ok", [*tr, o + "/t6", *TINY, "optim.max_steps=0"], "6"),
        ("train: data.kind=bogus", "error", [*tr, o + "/t7", *TINY, "data.kind=bogus"], "6"),
        ("train: run.device=cuda (CPU build)", "error", [*tr, o + "/t8", *TINY, "run.device=cuda"], "5"),
        ("train: an unknown key", "error", [*tr, o + "/t9", *TINY, "optim.learning_rate=0.1"], "6"),
        ("train: config file missing", "error", ["train", "--config", "/nonexistent.yaml", "--out", o + "/t10"], "6"),
        ("train: broken YAML", "error", ["train", "--config", f["cfg_broken"], "--out", o + "/t11"], "6"),
        (
            "train: a config that is its own base",
            "error",
            ["train", "--config", f["cfg_self"], "--out", o + "/t12"],
            "6",
        ),  # fmt: skip
        (
            "explain: no usable face (landmarks outside)",
            "error",
            ["explain", "--model", f["ckpt"], "--data", f["far_landmarks"], "--out", o + "/e1", "--landmarks", "file"],
            "7, 8",
        ),  # fmt: skip
        (
            "explain: --rho nan",
            "error",
            ["explain", "--model", f["ckpt"], "--data", f["heldout"], "--out", o + "/e2", "--rho", "nan"],
            "8",
        ),
        (
            "parts: landmarks far outside",
            "error",
            ["parts", f["far_landmarks"], "--out", o + "/p1.png", "--detector", "haar"],
            "7",
        ),  # fmt: skip
        (
            "parts: one point at 1e9",
            "error",
            ["parts", f["one_point_1e9"], "--out", o + "/p2.png", "--detector", "haar"],
            "7",
        ),  # fmt: skip
        ("parts: --margin -2", "error", ["parts", f["heldout"], "--out", o + "/p3.png", "--margin", "-2"], "8"),
        ("parts: --out x.txt", "error", ["parts", f["heldout"], "--out", o + "/x.txt"], "8"),
        ("templates: --out DIR (no suffix)", "error", ["templates", "--out", o + "/DIR"], "8"),
        ("templates: --k abc", "error", ["templates", "--k", "abc"], "8"),
        ("templates: --show 0", "error", ["templates", "--show", "0", "--out", o + "/t.png"], "8"),
        ("templates: --show -1", "error", ["templates", "--show", "-1", "--out", o + "/t.png"], "8"),
        ("templates: --width 0", "error", ["templates", "--width", "0"], "8"),
        ("synth: --sheet out (no suffix)", "error", ["synth", "--sheet", o + "/out"], "8"),
        ("crop: source folder missing", "error", ["crop", "/nonexistent/src", o + "/c1"], "-"),
        (
            "visualize: checkpoint missing",
            "error",
            ["visualize", "--model", "/nonexistent.safetensors", "--images", "synthetic", "--out", o + "/vis"],
            "-",
        ),  # fmt: skip
        *cases_26(f, o),
    ]


def cases_26(f: dict[str, str], o: str) -> list[tuple[str, str, list[str], str]]:
    """Issue 26's cases (the defect column: 26.<item>)."""
    img = sorted(Path(f["heldout"]).rglob("*.jpg"))
    a, b = str(img[0]), str(img[1])
    why = ["why", "--model", f["ckpt"], "--faces", f["heldout"], a, b, "--out"]
    # a fresh copy of the fixture's 2-step run each time (main): a case that resumes it may change it
    tr = ["train", "--config", "configs/cpu/vgg16_bn_softmax.yaml", "--out", o + "/run2", *TINY]
    return [
        ("train: resumed at lr 1e6 diverges", "error", [*tr, "optim.lr=1000000.0", "optim.max_steps=6"], "26.1"),
        ("train: resumed with another width", "error", [*tr, "model.width=0.125", "optim.max_steps=4"], "26.2"),
        ("train: a head too big for memory", "error",
         ["train", "--config", "configs/cpu/vgg16_bn_softmax.yaml", "--out", o + "/big", *TINY,
          "data.identities=1000000", "model.embedding_dim=50000"], "26.2"),  # fmt: skip
        ("why: a 32-channel dictionary", "error", [*why, o + "/w1", "--dictionary", f["dict32"]], "26.2"),
        ("why: threshold 2", "error", [*why, o + "/w2", "--threshold", "2"], "26.2"),
        ("why: threshold nan", "error", [*why, o + "/w3", "--threshold", "nan"], "26.2"),
        ("why: an empty verification result", "error", [*why, o + "/w4", "--verification", f["ver_empty"]], "26.2"),
        ("why: a FIFO named x.jpg", "error", [*why[:-3], f["fifo_x"], b, "--out", o + "/w5"], "26.3"),
        ("why: a FIFO dictionary", "error", [*why, o + "/w6", "--dictionary", f["fifo_dict"]], "26.3"),
        ("why: a FIFO verification result", "error", [*why, o + "/w7", "--verification", f["fifo_ver"]], "26.3"),
        ("verify: a FIFO pair file", "error",
         ["verify", "--model", f["ckpt"], "--pairs", f["fifo_pairs"], "--out", o + "/v26"], "26.3"),  # fmt: skip
        ("explain: a FIFO image among faces", "ok",
         ["explain", "--model", f["ckpt"], "--faces", f["faces_with_fifo"], "--out", o + "/e26"], "26.3"),  # fmt: skip
        ("experiment: an unknown method", "error", ["experiment", "--out", o + "/x1", "--methods", "foo"], "26.4"),
        ("why: one image", "error", ["why", "--model", f["ckpt"], "--out", o + "/w8", a], "26.4"),
        ("models: an unknown option", "error", ["models", "--bogus"], "26.4"),
    ]


def run_case(argv: list[str], src: str | None, timeout: float) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("EXPLAINFACE_TRACEBACK", None)
    start = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "explainface", *argv], capture_output=True, text=True,
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"outcome": "hang", "rc": None, "seconds": timeout, "message": f"killed after {timeout:g} s"}
    err = r.stderr.strip().splitlines()
    tb = "Traceback (most recent call last)" in r.stderr
    progress = ("train:", "faces:", "embedding:", "crops:")
    last = next((line for line in reversed(err) if line.strip() and not line.startswith(progress)), "")
    outcome = "traceback" if tb else ("ok" if r.returncode == 0 else "clean")
    message = last if outcome != "ok" else (r.stdout.strip().splitlines() or [""])[-1]
    return {"outcome": outcome, "rc": r.returncode, "seconds": round(time.perf_counter() - start, 1),
            "message": message[:300]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/bad_inputs", help="folder for the fixtures and cases.json")
    ap.add_argument("--src", default=None, help="run this source tree's package instead (an older checkout's src)")
    ap.add_argument("--timeout", type=float, default=90, help="seconds before a case counts as a hang")
    ap.add_argument("--only", default=None, help="run the cases whose name contains this text")
    args = ap.parse_args()
    out = Path(args.out)
    f = fixtures(out.parent / "bad_inputs_fixtures")
    shutil.rmtree(out / "work", ignore_errors=True)
    shutil.copytree(f["run2"], out / "work" / "run2")
    rows = []
    for name, expected, argv, defect in cases(f, out):
        if args.only and args.only not in name:
            continue
        r = run_case(argv, args.src, args.timeout)
        good = r["outcome"] == ("clean" if expected == "error" else "ok")
        rows.append({"case": name, "defect": defect, "expected": expected, **r, "good": good})
        print(f"{'  ' if good else '!!'} {name:<46} {r['outcome']:<9} {r['message'][:110]}", flush=True)
    n_good = sum(r["good"] for r in rows)
    print(f"\n{n_good} of {len(rows)} cases end as they should "
          f"({sum(r['outcome'] == 'traceback' for r in rows)} tracebacks, "
          f"{sum(r['outcome'] == 'hang' for r in rows)} hangs, "
          f"{sum(r['outcome'] == 'ok' and r['expected'] == 'error' for r in rows)} bad inputs accepted)")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases.json").write_text(json.dumps({"src": args.src or "this checkout", "cases": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
