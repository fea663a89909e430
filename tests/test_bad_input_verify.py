"""Issue 15 for `verify`, `report` and checkpoints: bad input ends in one clear error or a counted, named skip,
never a traceback, a hang or a silent wrong number."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from checkpoints import tiny_checkpoint
from explainface.errors import InputError

# ---- helpers -------------------------------------------------------------------------------------------------

#: The three kinds of unreadable image of the issue, and how each is written.
BAD_IMAGES = {
    "zero-byte": lambda p, good: p.write_bytes(b""),
    "truncated": lambda p, good: p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3]),
    "text-as-jpg": lambda p, good: p.write_text("these are not the pixels you are looking for\n"),
}


def _image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (72, 64, 3), dtype=np.uint8))
    return path


def _identity_tree(root: Path, people=("Ann", "Bob", "Cat"), per: int = 3) -> dict[str, Path]:
    """root/<name>/<name>_000k.jpg, LFW style; {"Ann_0001": path, ...}."""
    files = {}
    for n, name in enumerate(people):
        for k in range(1, per + 1):
            files[f"{name}_{k:04d}"] = _image(root / name / f"{name}_{k:04d}.jpg", seed=10 * n + k)
    return files


def _spoil(files: dict[str, Path], names: list[str]) -> dict[str, str]:
    """Make `names` unreadable, one kind each (cycling); {name: kind}."""
    kinds = list(BAD_IMAGES)
    good = next(p for n, p in files.items() if n not in names)
    spoiled = {}
    for i, name in enumerate(names):
        kind = kinds[i % len(kinds)]
        BAD_IMAGES[kind](files[name], good)
        spoiled[name] = kind
    return spoiled


PAIRS = [  # (a, b, same): LFW names
    ("Ann_0001", "Ann_0002", True), ("Bob_0001", "Bob_0002", True), ("Cat_0001", "Cat_0002", True),
    ("Ann_0002", "Ann_0003", True), ("Bob_0003", "Bob_0001", True), ("Cat_0003", "Cat_0001", True),
    ("Ann_0001", "Bob_0003", False), ("Bob_0002", "Cat_0003", False), ("Cat_0002", "Ann_0003", False),
    ("Ann_0002", "Cat_0001", False), ("Bob_0001", "Ann_0001", False), ("Cat_0003", "Bob_0003", False),
]  # fmt: skip


def _csv(path: Path, rows) -> Path:
    path.write_text("path_a,path_b,same\n" + "".join(f"{a},{b},{int(s)}\n" for a, b, s in rows))
    return path


def _rel(name: str) -> str:
    return f"{name.rsplit('_', 1)[0]}/{name}.jpg"


def _two_pairs(folder: Path) -> Path:
    """Faces in `folder` and a CSV of one same and one different pair of them."""
    _identity_tree(folder, per=2)
    return _csv(folder / "p.csv", [(_rel("Ann_0001"), _rel("Ann_0002"), 1), (_rel("Ann_0001"), _rel("Bob_0002"), 0)])


def _lfw_pairs_txt(path: Path, rows) -> Path:
    """One fold of pairs.txt: the same pairs first, then the different ones (what the format needs)."""
    same = [r for r in rows if r[2]]
    diff = [r for r in rows if not r[2]]
    assert len(same) == len(diff)
    lines = [f"1\t{len(same)}"]
    for a, b, _ in same:
        lines.append(f"{a.rsplit('_', 1)[0]}\t{int(a.rsplit('_', 1)[1])}\t{int(b.rsplit('_', 1)[1])}")
    for a, b, _ in diff:
        (na, ia), (nb, ib) = a.rsplit("_", 1), b.rsplit("_", 1)
        lines.append(f"{na}\t{int(ia)}\t{nb}\t{int(ib)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors")


def _verify(ckpt, pairs, out, **kw):
    from explainface.evaluate.verification_pipeline import verify

    kw.setdefault("detector", "haar")
    kw.setdefault("workers", 0)
    return verify(ckpt, pairs, out, progress=False, **kw)


# ---- 1. unreadable images are skipped, named and their pairs dropped -----------------------------------------


@pytest.mark.parametrize("layout", ["csv", "lfw"])
def test_unreadable_images_are_skipped_named_and_their_pairs_dropped(tmp_path, ckpt, layout, capsys):
    from explainface.cli import main

    files = _identity_tree(tmp_path / "faces")
    spoiled = _spoil(files, ["Bob_0002", "Cat_0002", "Ann_0003"])
    if layout == "csv":
        pairs = _csv(tmp_path / "faces" / "pairs.csv", [(_rel(a), _rel(b), s) for a, b, s in PAIRS])
    else:
        pairs = _lfw_pairs_txt(tmp_path / "faces" / "pairs.txt", PAIRS)
    dropped = [p for p in PAIRS if p[0] in spoiled or p[1] in spoiled]
    out = tmp_path / "out"
    assert main(["verify", "--model", str(ckpt), "--pairs", str(pairs), "--out", str(out), "--detector", "haar",
                 "--workers", "0", "--quiet"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    res = json.loads((out / "verification.json").read_text())
    assert res["images_skipped"] == len(spoiled)
    assert {Path(name).stem for name in res["skipped_images"]} == set(spoiled)
    reasons = {Path(n).stem: r for n, r in res["skipped_images"].items()}
    assert "empty" in reasons[next(n for n, k in spoiled.items() if k == "zero-byte")]
    assert "truncated" in reasons[next(n for n, k in spoiled.items() if k == "truncated")]
    assert res["pairs_dropped"] == len(dropped) and res["pairs_in_file"] == len(PAIRS)
    assert res["pairs"] == len(PAIRS) - len(dropped)
    assert f"{len(PAIRS) - len(dropped)} of {len(PAIRS)} pairs, {len(dropped)} dropped" in printed
    for name in spoiled:
        assert name in printed
    assert "cannot be read and were skipped" in printed
    emb = np.load(out / "embeddings.npy")  # one row per image; the skipped ones NaN, the rest finite
    assert emb.shape[0] == res["images"] and int(np.isnan(emb).all(1).sum()) == len(spoiled)
    assert np.isfinite(emb[~np.isnan(emb).all(1)]).all()


def test_every_pair_dropped_is_a_clear_error(tmp_path, ckpt):
    files = _identity_tree(tmp_path / "faces", per=2)
    _spoil(files, ["Ann_0001", "Bob_0001"])
    pairs = _csv(tmp_path / "p.csv", [("faces/Ann/Ann_0001.jpg", "faces/Bob/Bob_0002.jpg", 0),
                                      ("faces/Bob/Bob_0001.jpg", "faces/Bob/Bob_0002.jpg", 1)])  # fmt: skip
    with pytest.raises(InputError, match=r"p\.csv: all pairs were dropped.*2 of 3 images cannot be read.*Ann_0001"):
        _verify(ckpt, pairs, tmp_path / "out")


def test_unreadable_images_in_a_nested_layout_are_skipped(tmp_path, ckpt):
    """Images that are not `root/<identity>/<file>` (CFP style) are cropped file by file: skipped the same way."""
    root = tmp_path / "img"
    files = {f"{d}{k}": _image(root / d / "frontal" / f"{k:02d}.jpg", seed=k + 7 * len(d)) for d in ("001", "02")
             for k in range(1, 4)}  # fmt: skip
    files["lone"] = _image(root / "lone.jpg", 99)  # a different depth: not an identity tree
    _spoil(files, ["0012", "022"])  # an empty file (found before cropping) and a truncated one (while cropping)
    rows = [("0011", "0012", 1), ("0011", "0013", 1), ("021", "022", 1), ("0011", "021", 0), ("0013", "023", 0),
            ("lone", "022", 0)]  # fmt: skip
    pairs = _csv(tmp_path / "p.csv", [(files[a], files[b], s) for a, b, s in rows])
    res = _verify(ckpt, pairs, tmp_path / "out")
    assert sorted(res["skipped_images"]) == sorted([str(files["0012"]), str(files["022"])])
    assert res["skipped_images"][str(files["0012"])] == "empty file"
    assert "truncated" in res["skipped_images"][str(files["022"])]
    assert res["pairs_dropped"] == 3 and res["pairs"] == 3


def test_unreadable_model_input_crops_and_bin_images_are_skipped(tmp_path, ckpt):
    from explainface.readers.insightface_bin import write_bin_pairs

    root = tmp_path / "crops"
    files = _identity_tree(root, per=2)
    (root / "crop_meta.json").write_text("{}")  # a crop cache: images are only resized
    _spoil(files, ["Cat_0001"])
    pairs = _csv(root / "p.csv", [(_rel("Ann_0001"), _rel("Ann_0002"), 1), (_rel("Cat_0001"), _rel("Cat_0002"), 1),
                                  (_rel("Bob_0001"), _rel("Ann_0002"), 0)])  # fmt: skip
    res = _verify(ckpt, pairs, tmp_path / "out")
    assert res["images_skipped"] == 1 and res["pairs_dropped"] == 1 and not (tmp_path / "out" / "crops112").exists()

    good = [files[n].read_bytes() for n in ("Ann_0001", "Ann_0002", "Bob_0001", "Bob_0002")]
    binfile = write_bin_pairs(tmp_path / "p.bin", good[:2] + [b"garbage"] + good[3:] + good[:2], [True, False, True])
    res = _verify(ckpt, binfile, tmp_path / "out_bin")
    assert list(res["skipped_images"]) == [f"{binfile}[2]"] and res["pairs_dropped"] == 1 and res["pairs"] == 2


# ---- 2. only the images the pairs name are read --------------------------------------------------------------


def test_a_flat_csv_crops_only_the_images_it_names(tmp_path, ckpt):
    flat = tmp_path / "data" / "flat"
    for i, n in enumerate("abcd"):
        _image(flat / f"{n}.jpg", i)
    for j in range(3):  # siblings of the image folder, and an unnamed image beside the named ones
        for k in range(4):
            _image(tmp_path / "data" / f"other{j}" / f"x{k}.jpg", 100 + 10 * j + k)
    _image(flat / "unnamed.jpg", 50)
    pairs = tmp_path / "flat.csv"
    pairs.write_text("a.jpg,b.jpg,1\nc.jpg,d.jpg,0\n")
    res = _verify(ckpt, pairs, tmp_path / "out", root=flat)
    crops = sorted(p.relative_to(tmp_path / "out" / "crops112").as_posix()
                   for p in (tmp_path / "out" / "crops112").rglob("*.jpg"))  # fmt: skip
    assert crops == ["flat/a.jpg", "flat/b.jpg", "flat/c.jpg", "flat/d.jpg"]
    assert res["pairs"] == 2 and res["images"] == 4
    meta = json.loads((tmp_path / "out" / "crops112" / "crop_meta.json").read_text())
    assert meta["source"] == str(flat.parent.resolve())  # the real folder, not the temporary tree of links


def test_an_lfw_subset_crops_only_the_people_it_names(tmp_path, ckpt):
    _identity_tree(tmp_path / "lfw", people=("Ann", "Bob", "Cat", "Dan", "Eve"))
    rows = [("Ann_0001", "Ann_0002", True), ("Ann_0001", "Bob_0001", False)]
    res = _verify(ckpt, _lfw_pairs_txt(tmp_path / "lfw" / "pairs.txt", rows), tmp_path / "out")
    crops = sorted(p.stem for p in (tmp_path / "out" / "crops112").rglob("*.jpg"))
    assert crops == ["Ann_0001", "Ann_0002", "Bob_0001"] and res["pairs"] == 2


# ---- 3. metrics ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("same", [True, False])
def test_one_class_pairs_leave_auc_undefined(same):
    from explainface.evaluate.verification import verification_report

    scores = np.random.default_rng(0).normal(size=40)
    rep = verification_report(scores, np.full(40, same))
    assert rep["auc"] is None and rep["eer"] is None and set(rep["tar_at_far"].values()) == {None}
    kind = "same-person" if same else "different-person"
    assert any("AUC" in n and "undefined" in n and kind in n for n in rep["notes"])
    both = verification_report(scores, np.arange(40) % 2 == 0)
    assert both["auc"] is not None and not any("undefined" in n for n in both["notes"])


def test_verify_on_one_class_pairs_says_auc_is_undefined_and_stores_null(tmp_path, ckpt):
    from explainface.evaluate.verification_pipeline import summary_line

    _identity_tree(tmp_path / "f")
    rows = [(_rel(a), _rel(b), s) for a, b, s in PAIRS if s]
    res = _verify(ckpt, _csv(tmp_path / "f" / "p.csv", rows), tmp_path / "out")
    line = summary_line(res)
    assert "AUC undefined" in line and "EER undefined" in line and "AUC 0.0000" not in line
    saved = json.loads((tmp_path / "out" / "verification.json").read_text())
    assert saved["auc"] is None and saved["eer"] is None
    assert "null" in (tmp_path / "out" / "verification.json").read_text()


def test_too_few_pairs_fall_back_to_leave_one_out_or_fail_clearly(tmp_path, ckpt):
    from explainface.evaluate.verification import kfold_accuracy

    with pytest.raises(ValueError, match="at least 2 pairs"):
        kfold_accuracy(np.array([0.5]), np.array([True]))
    res = kfold_accuracy(np.array([0.9, 0.1, 0.8, 0.2]), np.array([True, False, True, False]))
    assert res["folds"] == 4 and any("leave-one-out" in n for n in res["notes"])
    res = kfold_accuracy(np.arange(20.0), np.arange(20) >= 10)
    assert res["folds"] == 10 and res["notes"] == []
    res = kfold_accuracy(np.arange(6.0), np.arange(6) >= 3, folds=np.zeros(6, int))  # one official fold left
    assert res["folds"] == 6 and any("one official fold" in n for n in res["notes"])
    with pytest.raises(ValueError, match="folds must be at least 2"):
        kfold_accuracy(np.arange(6.0), np.arange(6) >= 3, folds=1)

    _identity_tree(tmp_path / "f", per=2)
    one = _csv(tmp_path / "f" / "one.csv", [(_rel("Ann_0001"), _rel("Ann_0002"), 1)])
    with pytest.raises(InputError, match=r"one\.csv: only 1 pair; .*at least 2"):
        _verify(ckpt, one, tmp_path / "out")


def test_nan_weights_are_an_error_naming_the_checkpoint(tmp_path, ckpt):
    from explainface.training.checkpoint import load_model

    path = _rewrite(ckpt, tmp_path / "nan.safetensors", lambda t: {k: v.fill_(float("nan")) if v.is_floating_point()
                                                                    else v for k, v in t.items()})  # fmt: skip
    with pytest.raises(InputError, match=r"nan\.safetensors: .*NaN or infinite"):
        load_model(path)
    pairs = _two_pairs(tmp_path / "f")
    with pytest.raises(InputError, match=r"nan\.safetensors: .*NaN or infinite"):
        _verify(path, pairs, tmp_path / "out")
    assert not (tmp_path / "out" / "verification.json").exists()


def test_non_finite_embeddings_are_an_error_naming_the_checkpoint(tmp_path, ckpt):
    """Finite weights whose activations overflow: the embeddings are NaN, which must not become an accuracy."""
    huge = _rewrite(ckpt, tmp_path / "huge.safetensors",
                    lambda t: {k: v * 1e30 if v.is_floating_point() else v for k, v in t.items()})  # fmt: skip
    with pytest.raises(InputError, match=r"huge\.safetensors: the network gives NaN or infinite embeddings"):
        _verify(huge, _two_pairs(tmp_path / "f"), tmp_path / "out")


# ---- 4. checkpoints ------------------------------------------------------------------------------------------


def _rewrite(src: Path, dst: Path, tensors=None, meta=None) -> Path:
    """A copy of checkpoint `src` with its tensors and/or metadata changed by functions."""
    t = load_file(str(src))
    with safe_open(str(src), "pt") as f:
        m = dict(f.metadata())
    save_file(tensors(t) if tensors else t, str(dst), metadata=meta(m) if meta else m)
    return dst


def _state(change):
    def meta(m):
        state = json.loads(m["state"])
        change(state)
        return {**m, "state": json.dumps(state)}

    return meta


def test_weights_of_another_width_or_architecture_name_the_file_and_the_mismatch(tmp_path, ckpt):
    from explainface.training.checkpoint import load_model

    wide = tiny_checkpoint(tmp_path / "wide.safetensors", width=0.25)
    bn = tiny_checkpoint(tmp_path / "bn.safetensors", name="vgg13_bn", width=0.25)
    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()
    for src, fits in ((wide, "vgg13 w0.25"), (bn, "vgg13_bn w0.25")):
        mixed = tmp_path / f"mixed_{src.stem}.safetensors"
        save_file(load_file(str(src)), str(mixed), metadata=meta)  # this checkpoint's config, the other's weights
        with pytest.raises(InputError) as err:
            load_model(mixed)
        text = str(err.value)
        assert text.startswith(f"{mixed}: its config says vgg13 w0.125 @112, but its weights do not fit")
        assert "features.conv1_1.weight expects [8,3,3,3], the file has [16,3,3,3]" in text
        assert f"they fit {fits} @112" in text
        assert len(text) < 1200 and "\n" not in text  # one line, not load_state_dict's page


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing tensor", r"1 tensor\(s\) missing \(features.conv1_1.bias\)"),
        ("extra tensor", r"1 unexpected tensor\(s\) \(extra\)"),
        ("wrong shape", r"expects \[[\d,]+\], the file has \[3,3\]"),
        ("wrong dtype", r"expects floating-point values, the file has torch.int32"),
        ("no model tensors", r"holds no network weights"),
    ],
)
def test_wrong_tensors_name_the_file_and_the_tensor(tmp_path, ckpt, case, expected):
    from explainface.training.checkpoint import load_model

    def change(t):
        if case == "missing tensor":
            del t["model.features.conv1_1.bias"]
        elif case == "extra tensor":
            t["model.extra"] = torch.zeros(2)
        elif case == "wrong shape":
            key = next(k for k in t if k.startswith("model.") and k.endswith("weight") and t[k].dim() == 2)
            t[key] = torch.zeros(3, 3)
        elif case == "wrong dtype":
            t["model.features.conv1_1.weight"] = t["model.features.conv1_1.weight"].to(torch.int32)
        else:
            t = {"head.w": torch.zeros(2)}
        return t

    path = _rewrite(ckpt, tmp_path / "t.safetensors", tensors=change)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: .*({expected})"):
        load_model(path)


BAD_META = {
    "no metadata": lambda m: {},
    "other format": lambda m: {**m, "format": "pytorch"},
    "no state": lambda m: {"format": m["format"]},
    "state not json": lambda m: {**m, "state": "{not json"},
    "state deeply nested": lambda m: {**m, "state": "[" * 100000 + "]" * 100000},
    "state a list": lambda m: {**m, "state": "[1, 2]"},
    "no config": _state(lambda s: s.pop("config")),
    "config a list": _state(lambda s: s.update(config=[1, 2])),
    "width a string": _state(lambda s: s["config"]["model"].update(width="wide")),
    "width negative": _state(lambda s: s["config"]["model"].update(width=-1)),
    "unknown network": _state(lambda s: s["config"]["model"].update(name="resnet9000")),
    "embedding_dim 0": _state(lambda s: s["config"]["model"].update(embedding_dim=0)),
    "input_size a list": _state(lambda s: s["config"]["model"].update(input_size=[112])),
    "huge width": _state(lambda s: s["config"]["model"].update(width=1e12)),
    "target layer a number": _state(lambda s: s["config"]["model"].update(target_layer=3)),
    "unknown target layer": _state(lambda s: s["config"]["model"].update(target_layer="nope")),
    "unknown key": _state(lambda s: s["config"]["model"].update(colour="red")),
    "pair heads a list": _state(lambda s: s.update(pair_heads=[1])),
    "pair head without options": _state(lambda s: s.update(pair_heads={"xcos": {"prefix": "reg.x"}})),
    "pair head of another size": _state(lambda s: s.update(pair_heads={"xcos": {"prefix": "model.features",
                                                                                "options": {"in_channels": 64}}})),
    "pair head huge": _state(lambda s: s.update(pair_heads={"xcos": {"prefix": "reg.x",
                                                                     "options": {"in_channels": 10**12}}})),
    "unknown pair head": _state(lambda s: s.update(pair_heads={"magic": {"prefix": "reg.x", "options": {}}})),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_META))
def test_bad_metadata_is_an_input_error_naming_the_file(tmp_path, ckpt, case):
    from explainface.training.checkpoint import load_model

    path = _rewrite(ckpt, tmp_path / "bad.safetensors", meta=BAD_META[case])
    with pytest.raises(InputError) as err:
        load_model(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def _torch_save(path: Path) -> None:
    torch.save({"model": torch.zeros(2)}, path)


@pytest.mark.parametrize(
    "case, write, expected",
    [
        ("empty", lambda p, c: p.write_bytes(b""), "empty file"),
        ("truncated", lambda p, c: p.write_bytes(c.read_bytes()[:5000]), "not a readable safetensors"),
        ("random bytes", lambda p, c: p.write_bytes(np.random.default_rng(0).bytes(3000)), "not a"),
        ("pickle", lambda p, c: p.write_bytes(b"\x80\x04\x95" + bytes(40)), "looks like a Python pickle"),
        ("zip (torch.save)", lambda p, c: _torch_save(p), "looks like a zip archive"),
        ("a folder", lambda p, c: p.mkdir(), "is a folder, not a checkpoint file"),
    ],
)
def test_files_that_are_not_checkpoints_name_the_file_and_are_never_unpickled(tmp_path, ckpt, monkeypatch, case,
                                                                               write, expected):  # fmt: skip
    import pickle

    from explainface.training.checkpoint import load_checkpoint, load_model, load_model_weights

    path = tmp_path / "x.safetensors"
    write(path, ckpt)

    def refuse(*a, **k):
        raise AssertionError("a checkpoint must never be unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    for loader in (load_checkpoint, load_model, load_model_weights):
        with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: .*{expected}"):
            loader(path)


def test_a_missing_checkpoint_is_a_file_not_found_error_naming_it(tmp_path):
    from explainface.training.checkpoint import load_model

    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load_model(tmp_path / "nowhere.safetensors")


# ---- 5. options: device and batch first ----------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_blamed_on_the_device_not_the_checkpoint(tmp_path, ckpt):
    from explainface.training.checkpoint import load_model

    pairs = _two_pairs(tmp_path / "f")
    for run in (lambda: _verify(ckpt, pairs, tmp_path / "out", device="cuda"), lambda: load_model(ckpt, "cuda")):
        with pytest.raises(InputError, match=r"^device=cuda: CUDA is not available") as err:
            run()
        assert "checkpoint" not in str(err.value) and str(ckpt) not in str(err.value)


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "", "meta"])
def test_a_device_that_is_not_one_is_named(tmp_path, device):
    from explainface.training.checkpoint import load_model

    # the checkpoint does not even exist: the device is checked first
    with pytest.raises(InputError, match=rf"^device='{device}' is not a device"):
        _verify(tmp_path / "absent.safetensors", tmp_path / "absent.csv", tmp_path / "out", device=device)
    with pytest.raises(InputError, match=rf"^device='{device}' is not a device"):
        load_model(tmp_path / "absent.safetensors", device)


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("batch", 0, "batch"), ("batch", -1, "batch"), ("batch", 2.5, "batch"), ("batch", True, "batch"),
        ("workers", -1, "workers"), ("dlib_jitters", -2, "dlib_jitters"), ("precision", "fp16", "precision"),
        ("crop", "maybe", "crop"), ("detector", "eyeball", "detector"), ("score", "euclid", "score"),
    ],
)  # fmt: skip
def test_bad_options_fail_before_any_file_is_read(tmp_path, option, value, expected):
    with pytest.raises(InputError, match=rf"^(unknown )?{expected}.*{value!r}"):
        _verify(tmp_path / "absent.safetensors", tmp_path / "absent.csv", tmp_path / "out", **{option: value})
    assert not (tmp_path / "out").exists()


def test_batch_one_still_works(tmp_path, ckpt):
    res = _verify(ckpt, _two_pairs(tmp_path / "f"), tmp_path / "out", batch=1)
    assert res["pairs"] == 2


# ---- report: the skipped images reach the report -------------------------------------------------------------


def test_the_report_names_skipped_images_and_dropped_pairs(tmp_path, ckpt, monkeypatch):
    """`report` on a pair set with an unreadable image: verify's notes reach report.json and report.html (the
    costly explain/visualize/why steps are stubbed: this is about what the report does with verify's result)."""
    import explainface.evaluate.explainability_pipeline as explain_mod
    import explainface.explanations.visualize as visualize_mod
    import explainface.explanations.why_pipeline as why_mod
    from explainface.report.build import build_report

    png = tmp_path / "dot.png"
    cv2.imwrite(str(png), np.zeros((4, 4, 3), np.uint8))
    monkeypatch.setattr(explain_mod, "explain", lambda *a, **k: {"images": 0})
    monkeypatch.setattr(visualize_mod, "visualize", lambda *a, **k: {"gallery": png, "channel_dictionary": png})
    monkeypatch.setattr(why_mod, "why_examples", lambda *a, **k: {})
    files = _identity_tree(tmp_path / "f")
    _spoil(files, ["Cat_0002"])
    pairs = _csv(tmp_path / "f" / "p.csv", [(_rel(a), _rel(b), s) for a, b, s in PAIRS])
    path = build_report(ckpt, tmp_path / "rep", pairs=pairs, faces="synthetic", progress=False)
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    v = report["models"][0]["verification"]
    dropped = sum(1 for a, b, _ in PAIRS if "Cat_0002" in (a, b))
    assert v["pairs_dropped"] == dropped and v["images_skipped"] == 1
    notes = " ".join(report["notes"])
    assert "Cat_0002" in notes and f"the {dropped} of {len(PAIRS)} pairs that use them were dropped" in notes
    assert "Cat_0002" in path.read_text()


@pytest.mark.slow
def test_dlib_skips_unreadable_images_the_same_way(tmp_path):
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed (pip install face_recognition_models)")
    files = _identity_tree(tmp_path / "f", per=2)
    _spoil(files, ["Bob_0001"])
    rows = [(_rel("Ann_0001"), _rel("Ann_0002"), 1), (_rel("Bob_0001"), _rel("Bob_0002"), 1),
            (_rel("Ann_0001"), _rel("Cat_0002"), 0), (_rel("Cat_0001"), _rel("Bob_0001"), 0)]  # fmt: skip
    res = _verify("dlib", _csv(tmp_path / "f" / "p.csv", rows), tmp_path / "out")
    assert [Path(n).stem for n in res["skipped_images"]] == ["Bob_0001"] and res["skipped_images"]
    assert res["pairs_dropped"] == 2 and res["pairs"] == 2 and "empty" in next(iter(res["skipped_images"].values()))
