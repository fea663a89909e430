"""Property-based fuzzing (hypothesis) of every reader of user files: pair lists (LFW `pairs.txt`, CSV, insightface
`.bin`, CFP protocol folders), landmark files (`.pts`, LaPa 106, WFLW, COCO JSON), RecordIO (`.rec` + `.idx` +
`property`), images and identity folders.

Each reader gets near-valid inputs (a valid file, then random mutations: fields replaced by NaN, inf, huge or
negative numbers, unicode digits, NUL bytes; lines deleted, duplicated, swapped; CRLF, byte-order marks, flipped
bytes, truncation, length fields pointing past the end) and random bytes. The property: the reader returns a
well-formed result, or raises `ValueError` / `OSError` whose message (as the CLI prints it) names the file; any
other exception (TypeError, KeyError, RecursionError, cv2.error, a bare UnicodeDecodeError ...) fails, and the
deadline of the hypothesis profile (tests/conftest.py) turns a hang or a pathological slowdown into a failure.
`HYPOTHESIS_PROFILE=long` runs many more examples.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("hypothesis")

from hypothesis import event, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from explainface.errors import describe  # noqa: E402
from explainface.readers.cfp import read_cfp_pairs  # noqa: E402
from explainface.readers.folders import IdentityFolderDataset  # noqa: E402
from explainface.readers.images import (  # noqa: E402
    decode_image_rgb,
    decode_image_rgb_reduced,
    jpeg_size,
    load_image_rgb,
    read_image_rgb,
    reduction_for,
)
from explainface.readers.landmarks import (  # noqa: E402
    read_coco_keypoints,
    read_landmarks,
    read_lapa106,
    read_pts,
    read_wflw,
)
from explainface.readers.pairs import PairList, read_pairs  # noqa: E402
from explainface.readers.recordio import (  # noqa: E402
    IRHeader,
    RecordIODataset,
    RecordIOReader,
    pack_header,
    scan_offsets,
    write_recordio_dataset,
)

# ---- the property ------------------------------------------------------------------------------------------------


def read_or_named_error(read, *names: str, what: str = "read"):
    """`read()`, or None when it raised a user error (ValueError / OSError) whose one-line message names one of
    `names`. Any other exception propagates and fails the example. `what` labels the outcome in the statistics
    (`pytest --hypothesis-show-statistics`)."""
    try:
        out = read()
    except (ValueError, OSError) as e:
        assert not isinstance(e, UnicodeError), f"bare {type(e).__name__} (its message names no file): {e}"
        line = describe(e)
        assert any(name in line for name in names), f"{type(e).__name__} does not name {names}: {line}"
        event(f"{what}: {type(e).__name__}")
        return None
    event(f"{what}: ok")
    return out


# ---- mutations -----------------------------------------------------------------------------------------------------

NASTY = [
    "", " ", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999", "-1", "0", "-0", "1e308", "3.5e38",
    "-3.5e38", "1e39", "1e9", "99999999999999999999", "9" * 5000, "\u0661\u0662", "\u00b2", "1_0", "+1", "0x10",
    "x", "\u00e9", "\x00", "\ufeff", "\t", ",", '"', "'", "{", "}", ":", "n_points: 68", "106", "\r", "\u2028",
    "\x85", "../x", "/", "a b", "1.5", "-0.0", "1e-320",
]  # fmt: skip
tokens = st.one_of(
    st.sampled_from(NASTY),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)
_FIELD = re.compile(r"[^\t ,]+")
BOM = b"\xef\xbb\xbf"


@st.composite
def mutated_text(draw, lines: list[str]) -> bytes:
    """The file of `lines` after a few random line, field and byte mutations (possibly none)."""
    lines = list(lines)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "field", "field", "insert", "cut", "blank"]))
        if not lines:
            lines.append(draw(tokens))
            continue
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "field":
            fields = list(_FIELD.finditer(lines[i]))
            if fields:
                m = fields[draw(st.integers(0, len(fields) - 1))]
                lines[i] = lines[i][: m.start()] + draw(tokens) + lines[i][m.end() :]
        elif op == "insert":
            lines.insert(i, " ".join(draw(st.lists(tokens, max_size=4))))
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            lines.insert(i, "")
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", " \n"]))
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:
        data = BOM + data
    return draw(mutated_bytes(data, max_ops=2))


@st.composite
def mutated_bytes(draw, data: bytes, max_ops: int = 3) -> bytes:
    """`data` after a few byte mutations: flips, truncation, insertions, 4- and 8-byte fields set to extremes."""
    data = bytearray(data)
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["flip", "flip", "cut", "insert", "word", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "word":  # a length or count field pointing past the end, or to nothing
            word = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f",
                                         b"\xff" * 8, struct.pack("<Q", 1 << 40), b"\x00\x00\x00\x20"]))  # fmt: skip
            data[pos : pos + len(word)] = word
    return bytes(data)


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="fuzz-"))


def _tiny_image(h: int = 12, w: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.add.outer(np.arange(h) * 9, np.arange(w) * 5)[:, :, None] + rng.integers(0, 40, (h, w, 3))).astype(
        np.uint8
    )


def _encode(ext: str, image: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


# ---- LFW pairs.txt, CSV ---------------------------------------------------------------------------------------------

LFW_LINES = ["2\t2", "Alice\t1\t2", "Alice\t1\t3", "Alice\t1\tBob\t1", "Bob\t2\tCarol\t1", "Bob\t1\t2", "Alice\t2\t3",
             "Alice\t3\tCarol\t1", "Bob\t1\tAlice\t2"]  # fmt: skip


@pytest.fixture(scope="module")
def lfw_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lfw")
    for name, n in (("Alice", 3), ("Bob", 2), ("Carol", 1)):
        (root / name).mkdir()
        for k in range(1, n + 1):
            (root / name / f"{name}_{k:04d}.jpg").write_bytes(b"not decoded by read_pairs")
    (root / "csv").mkdir()
    for name in ("a.jpg", "b.jpg", "c d.jpg"):
        (root / "csv" / name).write_bytes(b"x")
    return root


def check_pair_list(pl: PairList) -> None:
    assert isinstance(pl, PairList) and len(pl) > 0
    n = len(pl.images)
    assert pl.a.shape == pl.b.shape == pl.same.shape == (len(pl),) and pl.same.dtype == bool
    assert 0 <= min(pl.a.min(), pl.b.min()) and max(pl.a.max(), pl.b.max()) < n
    assert pl.folds is None or (pl.folds.shape == (len(pl),) and pl.folds.min() >= 0)
    for ref in pl.images:
        assert (ref.path is None) != (ref.data is None)
        if ref.path is not None:
            assert ref.path.is_file(), ref.path


@given(data=mutated_text(LFW_LINES))
def test_fuzz_lfw_pairs_txt(lfw_root, data):
    path = lfw_root / "pairs.txt"
    path.write_bytes(data)
    pl = read_or_named_error(lambda: read_pairs(path), str(path), what="read_pairs")
    if pl is not None:
        check_pair_list(pl)
        assert all(ref.path.parent.parent == lfw_root for ref in pl.images)
        # what the header promises is what comes back: folds x (same + different) pairs, same pairs first in a fold
        header = next(line for line in data.decode("utf-8-sig").splitlines() if line.strip()).split()
        if len(header) == 2 and pl.folds is not None:
            header = [int(v) for v in header]
            assert len(pl) == header[0] * 2 * header[1]
            assert np.bincount(pl.folds).tolist() == [2 * header[1]] * header[0]


@given(data=st.binary(max_size=300))
def test_fuzz_lfw_pairs_txt_random_bytes(lfw_root, data):
    path = lfw_root / "random_pairs.txt"
    path.write_bytes(data)
    pl = read_or_named_error(lambda: read_pairs(path), str(path), what="read_pairs")
    if pl is not None:
        check_pair_list(pl)


CSV_LINES = ["path_a,path_b,same", "a.jpg,b.jpg,1", "a.jpg,c d.jpg,0", "b.jpg,c d.jpg,false", '"a.jpg",b.jpg,yes']


@given(data=mutated_text(CSV_LINES) | st.binary(max_size=200))
def test_fuzz_csv_pairs(lfw_root, data):
    path = lfw_root / "csv" / "pairs.csv"
    path.write_bytes(data)
    pl = read_or_named_error(lambda: read_pairs(path), str(path), what="read_pairs")
    if pl is not None:
        check_pair_list(pl)
        assert pl.folds is None


# ---- insightface .bin ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bin_images() -> list[bytes]:
    return [_encode(".jpg", _tiny_image(8, 8, s)) for s in range(3)] + [_encode(".png", _tiny_image(6, 6, 3))]


def _global_call(marker: Path) -> bytes:
    """Pickle opcodes that, were globals admitted, would create `marker` (builtins.open(marker, "w"))."""
    return b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR"


@st.composite
def bin_payloads(draw, images: list[bytes], marker: Path) -> bytes:
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "global", "structure", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "structure":  # any pickle-able data in place of (images, issame)
        leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=8),
                         st.text(max_size=8), st.sampled_from(images))  # fmt: skip
        value = st.recursive(leaf, lambda c: st.lists(c, max_size=4) | st.tuples(c, c) | st.dictionaries(
            st.text(max_size=3), c, max_size=3), max_leaves=12)  # fmt: skip
        content = draw(st.tuples(value, value) | value)
        return pickle.dumps(content, protocol=draw(st.integers(0, 5)))
    n = draw(st.integers(1, 2))
    content = ([images[i % len(images)] for i in range(2 * n)], [draw(st.booleans()) for _ in range(n)])
    data = pickle.dumps(content, protocol=draw(st.integers(0, 5)))
    if kind == "valid":
        return data
    if kind == "global":
        pos = draw(st.integers(0, len(data)))
        return data[:pos] + _global_call(marker) + data[pos:]
    return draw(mutated_bytes(data, max_ops=4))


@given(data=st.data())
def test_fuzz_insightface_bin(tmp_path_factory, bin_images, data):
    marker = tmp_path_factory.getbasetemp() / "a-bin-ran-code"
    payload = data.draw(bin_payloads(bin_images, marker))
    path = tmp_path_factory.getbasetemp() / "pairs.bin"
    path.write_bytes(payload)
    pl = read_or_named_error(lambda: read_pairs(path), str(path), what="read_pairs")
    assert not marker.exists(), "a .bin ran code"
    if pl is not None:
        check_pair_list(pl)
        assert len(pl.images) == 2 * len(pl) and all(ref.data is not None for ref in pl.images)
        for ref in pl.images:  # decodes, or names the entry
            image = read_or_named_error(ref.load_rgb, f"{path}[", what="decode .bin image")
            assert image is None or (image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3)


# ---- CFP -------------------------------------------------------------------------------------------------------------

CFP_FILES = {
    "Protocol/Pair_list_F.txt": ["1 ../Data/Images/001/frontal/01.jpg", "2 ../Data/Images/001/frontal/02.jpg",
                                 "3 ../Data/Images/002/frontal/01.jpg", "4 ../Data/Images/002/frontal/02.jpg"],
    "Protocol/Pair_list_P.txt": ["1 ../Data/Images/001/profile/01.jpg", "2 ../Data/Images/002/profile/01.jpg"],
    "Protocol/Split/FF/01/same.txt": ["1,2", "3,4"],
    "Protocol/Split/FF/01/diff.txt": ["1,3", "2,4"],
    "Protocol/Split/FF/02/same.txt": ["2,1"],
    "Protocol/Split/FF/02/diff.txt": ["4,1"],
    "Protocol/Split/FP/01/same.txt": ["1,1", "3,2"],
    "Protocol/Split/FP/01/diff.txt": ["1,2", "4,1"],
}  # fmt: skip
CFP_IMAGES = ["001/frontal/01.jpg", "001/frontal/02.jpg", "002/frontal/01.jpg", "002/frontal/02.jpg",
              "001/profile/01.jpg", "002/profile/01.jpg"]  # fmt: skip


@st.composite
def cfp_release(draw) -> tuple[dict[str, bytes], list[str], str, str | None]:
    """(file contents by relative path, paths to delete, the path to read, the protocol)."""
    files = {name: "\n".join(lines).encode() + b"\n" for name, lines in CFP_FILES.items()}
    for name in draw(st.lists(st.sampled_from(sorted(CFP_FILES)), max_size=2, unique=True)):
        files[name] = draw(mutated_text(CFP_FILES[name]) | st.binary(max_size=100))
    deleted = draw(st.lists(st.sampled_from(sorted(CFP_FILES) + ["Data/Images/" + p for p in CFP_IMAGES]
                                            + ["Protocol/Split/FF/02", "Protocol/Split/FP"]), max_size=1))  # fmt: skip
    where = draw(st.sampled_from(["", "Protocol", "Protocol/Split/FF", "Protocol/Split/FP"]))
    protocol = draw(st.sampled_from(["FF", "FP", "fp", None, "XX"]))
    return files, deleted, where, protocol


@given(release=cfp_release())
def test_fuzz_cfp_release(release):
    files, deleted, where, protocol = release
    root = fresh_dir()
    try:
        for rel in CFP_IMAGES:
            (root / "Data/Images" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "Data/Images" / rel).write_bytes(b"x")
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        for rel in deleted:
            shutil.rmtree(root / rel) if (root / rel).is_dir() else (root / rel).unlink()
        pl = read_or_named_error(lambda: read_cfp_pairs(root / where, protocol), str(root), what="read_cfp_pairs")
        if pl is not None:
            check_pair_list(pl)
            assert pl.folds is not None and all(root in ref.path.parents for ref in pl.images)
    finally:
        shutil.rmtree(root)


# ---- landmarks -------------------------------------------------------------------------------------------------------

_rng = np.random.default_rng(7)
PTS_LINES = ["version: 1", "n_points: 68", "{"] + [f"{x:.3f} {y:.3f}" for x, y in _rng.uniform(1, 250, (68, 2))] + ["}"]
LAPA_LINES = ["106"] + [f"{x:.2f} {y:.2f}" for x, y in _rng.uniform(0, 250, (106, 2))]


def _wflw_line(seed: int) -> str:
    r = np.random.default_rng(seed)
    coords = " ".join(f"{v:.3f}" for v in r.uniform(10, 200, 196))
    return f"{coords} 5 6 210 220 0 1 0 0 1 0 {seed}--Parade/{seed}_face.jpg"


WFLW_LINES = [_wflw_line(1), _wflw_line(2)]


def check_points(pts, n: int | None = None, nan_ok: bool = False) -> None:
    assert isinstance(pts, np.ndarray) and pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 2
    assert len(pts) >= 1 and (n is None or len(pts) == n)
    assert not np.isinf(pts).any() and (nan_ok or np.isfinite(pts).all())


@given(data=mutated_text(PTS_LINES) | st.binary(max_size=300))
def test_fuzz_pts(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "face.pts"
    path.write_bytes(data)
    pts = read_or_named_error(lambda: read_pts(path), str(path), what="read_pts")
    if pts is not None:
        check_points(pts)
    lm = read_or_named_error(lambda: read_landmarks(path), str(path), what="read_landmarks")
    if lm is not None:
        check_points(lm, 68)


@given(data=mutated_text(LAPA_LINES) | st.binary(max_size=300))
def test_fuzz_lapa106(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "face.txt"
    path.write_bytes(data)
    pts = read_or_named_error(lambda: read_lapa106(path), str(path), what="read_lapa106")
    if pts is not None:
        check_points(pts, 106)
    lm = read_or_named_error(lambda: read_landmarks(path), str(path), what="read_landmarks")
    if lm is not None:
        check_points(lm, 68)


@given(data=mutated_text(WFLW_LINES) | st.binary(max_size=300))
def test_fuzz_wflw(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "list_98pt_rect_attr_test.txt"
    path.write_bytes(data)
    records = read_or_named_error(lambda: read_wflw(path), str(path), what="read_wflw")
    if records is not None:
        assert records
        for r in records:
            check_points(r.landmarks, 98)
            assert all(math.isfinite(v) for v in r.box) and r.box[0] <= r.box[2] and r.box[1] <= r.box[3]
            assert isinstance(r.image, str) and r.image and set(r.attributes.values()) <= {True, False}
    lm = read_or_named_error(lambda: read_landmarks(path), str(path), what="read_landmarks")
    if lm is not None:
        check_points(lm, 68)


def _coco_doc() -> dict:
    r = np.random.default_rng(3)
    kpts = [[float(round(v, 2)) for xy in r.uniform(0, 200, (68, 2)) for v in (*xy, 2)] for _ in range(2)]
    kpts[1][2] = 0  # one unlabelled point
    return {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": "b", "file_name": "b.jpg"}, {"id": 3, "file_name": "c.jpg"}],
        "annotations": [{"id": 10, "image_id": 1, "keypoints": kpts[0]},
                        {"id": 11, "image_id": "b", "keypoints": kpts[1], "face_kpts": kpts[0]}],
    }  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(10**400), 10**400) | st.floats() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(["id", "image_id", "file_name", "keypoints",
                                                                         "face_kpts", "images", "x"]), c, max_size=3),
    max_leaves=10,
)  # fmt: skip


def _nodes(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:6]):
            yield from _nodes(v, path + (i,))


@st.composite
def coco_files(draw) -> bytes:
    doc = _coco_doc()
    for _ in range(draw(st.integers(0, 3))):
        nodes = list(_nodes(doc))
        where = draw(st.sampled_from(nodes))
        value = draw(json_values)
        if not where:
            doc = value
            continue
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        if draw(st.booleans()) or not isinstance(parent, list):
            parent[where[-1]] = value
        else:
            del parent[where[-1]]
    text = json.dumps(doc)  # NaN and Infinity as JSON's readers (Python's among them) write them
    kind = draw(st.sampled_from(["json", "json", "text", "deep", "random"]))
    if kind == "text":
        return draw(mutated_text([text]))
    if kind == "deep":
        depth = draw(st.sampled_from([10, 900, 5000, 100_000]))
        return ('{"images": ' + "[" * depth + "]" * depth + "}").encode()
    if kind == "random":
        return draw(st.binary(max_size=200))
    return text.encode()


@given(data=coco_files(), field=st.sampled_from(["auto", "keypoints", "face_kpts"]))
def test_fuzz_coco_keypoints(tmp_path_factory, data, field):
    path = tmp_path_factory.getbasetemp() / "person_keypoints.json"
    path.write_bytes(data)
    out = read_or_named_error(lambda: read_coco_keypoints(path, field), str(path), what="read_coco_keypoints")
    if out is not None:
        assert isinstance(out, dict) and all(isinstance(k, str) for k in out)
        for faces in out.values():
            for pts in faces:
                check_points(pts, nan_ok=True)


# ---- RecordIO --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rec_files(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("rec-valid")
    items = [(_encode(".jpg", _tiny_image(10, 10, s)), s // 2) for s in range(4)]
    write_recordio_dataset(out, items, height=10, width=10)
    plain = out / "plain"
    plain.mkdir()
    from explainface.readers.recordio import RecordIOWriter

    with RecordIOWriter(plain / "train.rec") as w:  # no meta record, one label array
        w.write(0, pack_header(IRHeader(0, [1.0, 5.0], 0, 0), items[0][0]))
        w.write(1, pack_header(IRHeader(0, 0.0, 1, 0), items[1][0]))
    return {
        "train.rec": (out / "train.rec").read_bytes(),
        "train.idx": (out / "train.idx").read_bytes(),
        "property": (out / "property").read_bytes(),
        "plain.rec": (plain / "train.rec").read_bytes(),
        "plain.idx": (plain / "train.idx").read_bytes(),
    }


@st.composite
def rec_sets(draw, files: dict[str, bytes]) -> dict[str, bytes | None]:
    base = draw(st.sampled_from(["train", "plain"]))
    rec, idx = files[f"{base}.rec"], files[f"{base}.idx"]
    prop = files["property"] if base == "train" else None
    target = draw(st.sampled_from(["rec", "rec", "idx", "property", "all", "random"]))
    if target in ("rec", "all"):
        rec = draw(mutated_bytes(rec, max_ops=4))
    if target in ("idx", "all"):
        idx = draw(mutated_text(idx.decode().splitlines()))
    if target in ("property", "all"):
        prop = draw(mutated_text([(prop or b"2,10,10").decode().strip()]))
    if target == "random":
        rec, idx = draw(st.binary(max_size=300)), draw(st.binary(max_size=40) | st.none())
    if draw(st.integers(0, 5)) == 0:
        idx = None  # no .idx: the reader scans the .rec
    return {"train.rec": rec, "train.idx": idx, "property": prop}


@given(data=st.data())
def test_fuzz_recordio(tmp_path_factory, rec_files, data):
    base = tmp_path_factory.getbasetemp() / "rec-fuzz"
    base.mkdir(exist_ok=True)
    files = data.draw(rec_sets(rec_files))
    for name, data in files.items():
        if (base / name).exists():
            (base / name).unlink()
        if data is not None:
            (base / name).write_bytes(data)
    rec = base / "train.rec"
    name = str(base)  # the .rec, the .idx or property
    offsets = read_or_named_error(lambda: scan_offsets(rec), name, what="scan_offsets")
    assert offsets is None or offsets == sorted(offsets)
    reader = read_or_named_error(lambda: RecordIOReader(rec), name, what="RecordIOReader")
    if reader is not None:
        for key in reader.keys:
            record = read_or_named_error(lambda key=key: reader.read(key), name, what="RecordIOReader.read")
            assert record is None or isinstance(record, bytes)
        reader.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # image keys of a mutated meta record missing from the index: named, skipped
        ds = read_or_named_error(lambda: RecordIODataset(base, size=8, bad="raise"), name, what="RecordIODataset")
    if ds is None:
        return
    classes = read_or_named_error(lambda: ds.num_classes, name, what="num_classes")
    assert classes is None or classes >= 1
    for i in range(len(ds)):
        try:
            image, label = ds[i]
        except ValueError as e:  # bad="raise": the record is named, the cause is a user error, not a bug
            assert name in str(e) and (e.__cause__ is None or isinstance(e.__cause__, (ValueError, OSError))), e
            continue
        assert tuple(image.shape) == (3, 8, 8) and isinstance(label, int) and label >= 0
        assert classes is None or label < classes
    ds.reader.close()


# ---- images ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoded_images() -> list[tuple[str, bytes]]:
    colour, grey = _tiny_image(24, 40, 1), cv2.cvtColor(_tiny_image(17, 9, 2), cv2.COLOR_BGR2GRAY)
    return [
        (".jpg", _encode(".jpg", colour)),
        (".jpg", _encode(".jpg", colour, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1))),
        (".jpg", _encode(".jpg", grey)),
        (".png", _encode(".png", colour)),
        (".png", _encode(".png", grey)),
        (".bmp", _encode(".bmp", colour)),
        (".webp", _encode(".webp", colour)),
        (".ppm", _encode(".ppm", colour)),
        (".pgm", _encode(".pgm", grey)),
    ]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@st.composite
def image_bytes(draw, images: list[tuple[str, bytes]]) -> bytes:
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "size", "magic", "random"]))
    data = draw(st.sampled_from(images))[1]
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "magic":  # random bytes behind a real signature, so that a decoder reads them
        sig = draw(st.sampled_from([b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
                                    b"P6\n", b"P5\n12 9\n255\n"]))  # fmt: skip
        return sig + draw(st.binary(max_size=200)) + draw(st.sampled_from([b"", b"\xff\xd9"]))
    if kind == "size":  # the header claims another size (PNG with its checksum fixed, so that libpng reads it)
        w, h = draw(st.sampled_from([0, 1, 7, 300, 4096, 65535])), draw(st.sampled_from([0, 1, 5, 300, 4096, 65535]))
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            ihdr = struct.pack(">II", w, h) + data[24:29]
            return data[:8] + _png_chunk(b"IHDR", ihdr) + data[33:]
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        if sof > 0:
            return data[: sof + 5] + struct.pack(">HH", h, w) + data[sof + 9 :]
    return data if kind == "valid" else draw(mutated_bytes(data, max_ops=3))


def _expected_side(side: int, k: int, jpeg: bool) -> int:
    return -(-side // k) if jpeg else side // k


@given(draw=st.data(), max_side=st.none() | st.integers(1, 64))
def test_fuzz_images(tmp_path_factory, encoded_images, draw, max_side):
    base = tmp_path_factory.getbasetemp()
    data = draw.draw(image_bytes(encoded_images))
    name = "fuzzed-image.jpg"
    got = read_or_named_error(
        lambda: decode_image_rgb_reduced(data, name, max_side), name, what="decode_image_rgb_reduced"
    )
    full = read_or_named_error(lambda: decode_image_rgb(data, name), name, what="decode_image_rgb")
    for image in (got[0] if got else None, full):
        assert image is None or (image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
                                 and min(image.shape[:2]) >= 1)  # fmt: skip
    if got is not None and full is not None:
        image, k = got
        h, w = full.shape[:2]
        jpeg = data[:2] == b"\xff\xd8" and jpeg_size(data) is not None
        assert k == reduction_for(w, h, max_side, jpeg=jpeg)
        assert image.shape[:2] == (_expected_side(h, k, jpeg), _expected_side(w, k, jpeg))
        assert k == 1 or max(image.shape[:2]) >= max_side
    path = base / "image.jpg"
    path.write_bytes(data)
    loaded = read_or_named_error(lambda: load_image_rgb(path, max_side), str(path), what="load_image_rgb")
    assert (loaded is None) == (got is None) and (loaded is None or np.array_equal(loaded, got[0]))
    read = read_image_rgb(path, max_side)
    assert (read is None) == (got is None)


# ---- identity folders ------------------------------------------------------------------------------------------------

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=10)


@st.composite
def identity_trees(draw, images: list[tuple[str, bytes]]) -> dict[str, dict[str, bytes]]:
    tree = {}
    for identity in draw(st.lists(names.filter(lambda s: s not in (".", "..")), max_size=3, unique=True)):
        files = {}
        for stem in draw(st.lists(names.filter(lambda s: "." not in s), min_size=1, max_size=3, unique=True)):
            ext = draw(st.sampled_from([".jpg", ".JPG", ".png", ".bmp", ".webp", ".ppm", ".txt"]))
            files[stem + ext] = draw(image_bytes(images))
            if draw(st.integers(0, 3)) == 0:
                files[stem + ".pts"] = draw(mutated_text(PTS_LINES))
        tree[identity] = files
    return tree


@given(data=st.data(), bad=st.sampled_from(["skip", "raise"]))
def test_fuzz_identity_folders(encoded_images, data, bad):
    tree = data.draw(identity_trees(encoded_images))
    root = fresh_dir()
    try:
        for identity, files in tree.items():
            (root / identity).mkdir()
            for file, data in files.items():
                (root / identity / file).write_bytes(data)
        ds = read_or_named_error(
            lambda: IdentityFolderDataset(root, size=8, bad=bad, landmarks=True),
            str(root),
            what="IdentityFolderDataset",
        )
        if ds is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(len(ds)):
                item = read_or_named_error(lambda i=i: ds[i], str(root), what="item")
                if item is None:
                    continue
                image, label, landmarks = item
                assert tuple(image.shape) == (3, 8, 8) and 0 <= label < ds.num_classes
                assert tuple(landmarks.shape) == (68, 2)
                assert not landmarks.isinf().any() and (landmarks.isnan().all() or landmarks.isfinite().all())
    finally:
        shutil.rmtree(root)


# ---- dlib networks (.dat) ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dlib_tiny_file():
    """A tiny dlib network of the face ResNet's structure, as bytes, and its ops."""
    from explainface.readers.dlib_dnn import write_dlib_net
    from test_dlib_resnet import tiny_net

    net = tiny_net()
    return write_dlib_net(None, net), net.ops


@given(data=st.data())
def test_fuzz_dlib_network(tmp_path_factory, dlib_tiny_file, data):
    from explainface.readers.dlib_dnn import read_dlib_net

    valid, ops = dlib_tiny_file
    blob = data.draw(mutated_bytes(valid, max_ops=3) | st.binary(max_size=300))
    path = tmp_path_factory.mktemp("dlib") / "net.dat"
    path.write_bytes(blob)
    net = read_or_named_error(lambda: read_dlib_net(path, ops), str(path), what="dlib network")
    if net is not None:
        assert sorted(net.params) == [i for i, op in enumerate(ops) if op.kind in ("con", "affine", "fc")]
        assert all(a.dtype == np.float32 for p in net.params.values() for a in p.values())
