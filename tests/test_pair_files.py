"""Pair sources (docs/method.md §5.1): LFW pairs.txt, insightface .bin (no code may run) and CSV, all read into one
PairList."""

import os
import pickle
import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from explainface.readers.insightface_bin import write_bin_pairs
from explainface.readers.pairs import ImageRef, PairList, read_pairs, write_csv_pairs
from realdata import real_data

REPO = Path(__file__).resolve().parents[1]


def _image(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _encoded(seed: int, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, _image(seed))
    assert ok
    return buf.tobytes()


def _write_image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), _image(seed))
    return path


# ---- insightface .bin ----------------------------------------------------------------------------------------------


def test_bin_written_by_us_reads_back_identical_bytes_and_labels(tmp_path):
    images = [_encoded(i, ".png" if i % 2 else ".jpg") for i in range(6)]
    pairs = read_pairs(write_bin_pairs(tmp_path / "tiny.bin", images, [True, False, True]))
    assert [ref.data for ref in pairs.images] == images
    assert pairs.a.tolist() == [0, 2, 4] and pairs.b.tolist() == [1, 3, 5]
    assert pairs.same.tolist() == [True, False, True]
    assert pairs.folds is None and len(pairs) == 3 and pairs.source == str(tmp_path / "tiny.bin")


def test_bin_images_decode_to_rgb(tmp_path):
    pairs = read_pairs(write_bin_pairs(tmp_path / "tiny.bin", [_encoded(0), _encoded(1)], [False]))
    rgb = pairs.images[1].load_rgb()
    np.testing.assert_array_equal(rgb, cv2.cvtColor(_image(1), cv2.COLOR_BGR2RGB))  # PNG is lossless


def test_bin_undecodable_entry_is_named(tmp_path):
    pairs = read_pairs(write_bin_pairs(tmp_path / "tiny.bin", [_encoded(0), b"not an image"], [True]))
    with pytest.raises(ValueError, match=r"tiny\.bin\[1\]"):
        pairs.images[1].load_rgb()


def _python2_pickle(images: list[bytes], issame: list[bool]) -> bytes:
    """What Python 2 insightface wrote: protocol 2, images as `str` (BINSTRING), which Python 3 must read as bytes."""
    out = bytearray(b"\x80\x02](")  # PROTO 2, EMPTY_LIST, MARK
    for data in images:
        out += b"T" + struct.pack("<i", len(data)) + data  # BINSTRING
    out += b"e](" + b"".join(b"\x88" if s else b"\x89" for s in issame) + b"e"  # APPENDS; list of NEWTRUE/NEWFALSE
    return bytes(out + b"\x86.")  # TUPLE2, STOP


def test_bin_from_python2_reads_images_as_bytes(tmp_path):
    images = [_encoded(i, ".jpg") for i in range(4)]
    payload = _python2_pickle(images, [True, False])
    with pytest.raises(UnicodeDecodeError):  # control: the default text decoding chokes on Python 2 `str` images
        pickle.loads(payload)
    path = tmp_path / "py2.bin"
    path.write_bytes(payload)
    pairs = read_pairs(path)
    assert [ref.data for ref in pairs.images] == images and pairs.same.tolist() == [True, False]


class _Reduce:
    """Pickles as a call of `func(*args)`: the classic code-execution payload."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _exec_payload(source: str, module: str = "builtins", function: str = "exec") -> bytes:
    """A hand-written pickle calling `module.function(source)` through the GLOBAL opcode."""
    code = source.encode()
    return f"c{module}\n{function}\n(X".encode() + struct.pack("<I", len(code)) + code + b"tR."


@pytest.mark.parametrize("module, function", [("builtins", "exec"), ("__builtin__", "eval")])
def test_exec_payload_control_runs_code_with_plain_pickle(tmp_path, module, function):
    marker = tmp_path / "pwned"
    pickle.loads(_exec_payload(f"open({str(marker)!r}, 'w').close()", module, function))
    assert marker.exists()  # so the refusals below test a live payload


@pytest.mark.parametrize(
    "variant",
    [
        "os.system reduce, protocol 2 GLOBAL",
        "os.system reduce, protocol 4 STACK_GLOBAL",
        "builtins.exec GLOBAL",
        "__builtin__.eval GLOBAL (Python 2 name)",
        "os.system INST",
        "subprocess.Popen reduce",
    ],
)
def test_bin_that_asks_for_a_global_is_refused_and_runs_nothing(tmp_path, variant):
    marker = tmp_path / "pwned"
    touch = f"open({str(marker)!r}, 'w').close()"
    shell = f"touch '{marker}'"
    payloads = {
        "os.system reduce, protocol 2 GLOBAL": lambda: pickle.dumps(([_Reduce(os.system, shell)], [True]), 2),
        "os.system reduce, protocol 4 STACK_GLOBAL": lambda: pickle.dumps(([_Reduce(os.system, shell)], [True]), 4),
        "builtins.exec GLOBAL": lambda: _exec_payload(touch),
        "__builtin__.eval GLOBAL (Python 2 name)": lambda: _exec_payload(touch, "__builtin__", "eval"),
        "os.system INST": lambda: f"(S'{shell}'\nios\nsystem\n.".encode(),
        "subprocess.Popen reduce": lambda: pickle.dumps(([_Reduce(subprocess.Popen, ["touch", str(marker)])], [1]), 4),
    }
    path = tmp_path / "evil.bin"
    path.write_bytes(payloads[variant]())
    with pytest.raises(ValueError, match=r"evil\.bin.*refuses to load globals"):
        read_pairs(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, global_name",
    [
        (lambda: ([np.frombuffer(_encoded(0), np.uint8), np.frombuffer(_encoded(1), np.uint8)], [True]), "numpy"),
        (lambda: ([_encoded(0), _encoded(1)], [np.bool_(True)]), "numpy"),
    ],
    ids=["numpy image arrays", "numpy bool labels"],
)
def test_bin_with_numpy_objects_is_refused(tmp_path, content, global_name):
    path = tmp_path / "np.bin"
    path.write_bytes(pickle.dumps(content(), protocol=4))
    with pytest.raises(ValueError, match=rf"np\.bin.*refuses to load globals.*{global_name}"):
        read_pairs(path)


@pytest.mark.parametrize(
    "content, problem",
    [
        ({"images": [], "issame": []}, "expected a pickled 2-tuple"),
        (([b"a", b"b"], [True], None), "expected a pickled 2-tuple"),
        ((b"ab", [True]), "expected \\(list of images, list of issame\\)"),
        (([b"a", b"b", b"c"], [True]), "1 pairs need 2 images, the file has 3"),
        ((["a", "b"], [True]), "image 0 is str"),
        (([b"a", None], [True]), "image 1 is NoneType"),
        (([b"a", b"b"], [2]), r"issame\[0\] is 2"),
        (([b"a", b"b"], ["yes"]), r"issame\[0\] is 'yes'"),
        (([], []), "no pairs"),
    ],
)
def test_bin_with_wrong_structure_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(content, protocol=4))
    with pytest.raises(ValueError, match=rf"bad\.bin.*{problem}"):
        read_pairs(path)


@pytest.mark.parametrize("data", [b"\x00\x01garbage", pickle.dumps(([b"a", b"b"], [True]))[:-5]], ids=["junk", "cut"])
def test_bin_that_is_not_a_pickle_is_a_value_error(tmp_path, data):
    path = tmp_path / "junk.bin"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"junk\.bin: not a readable pickle"):
        read_pairs(path)


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_bin_pickled_by_python3_in_any_protocol_reads(tmp_path, protocol, kind):
    """Protocols 0-2 store bytes as `_codecs.encode(text, "latin1")`, b"" as `bytes()`, bytearray as a call of
    `bytearray`: those three globals are admitted through a stand-in that can only build bytes."""
    images = [_encoded(0), _encoded(1, ".jpg"), b"", _encoded(2)]
    path = tmp_path / "py3.bin"
    path.write_bytes(pickle.dumps(([kind(d) for d in images], [True, False]), protocol=protocol))
    pairs = read_pairs(path)
    assert [ref.data for ref in pairs.images] == images and pairs.same.tolist() == [True, False]


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02c__builtin__\nbytes\nJ\x00\xca\x9a;\x85R.",  # bytes(10**9): a gigabyte of zeros
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.",  # a codec other than latin-1
        b"\x80\x02c_codecs\nencode\n\x8c\x01a\x85R.",  # encode("a") with the default codec
    ],
    ids=["bytes(n)", "encode zlib", "encode default"],
)
def test_bytes_stand_in_builds_only_bytes_from_bytes_or_latin1(tmp_path, payload):
    path = tmp_path / "odd.bin"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=r"odd\.bin.*refuses to load globals.*byte string built from"):
        read_pairs(path)


def test_bin_ints_0_1_are_accepted_as_labels(tmp_path):
    path = tmp_path / "ints.bin"
    path.write_bytes(pickle.dumps(([_encoded(0)] * 4, [1, 0]), protocol=2))
    assert read_pairs(path).same.tolist() == [True, False]


# ---- CSV -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def csv_images(tmp_path) -> list[Path]:
    return [_write_image(tmp_path / "faces" / f"img{i}.png", i) for i in range(4)]


def test_csv_with_header_resolves_relative_paths_against_its_folder(tmp_path, csv_images):
    path = tmp_path / "pairs.csv"
    path.write_text("path_a,path_b,same\nfaces/img0.png,faces/img1.png,1\nfaces/img0.png,faces/img2.png,0\n")
    pairs = read_pairs(path)
    assert [ref.path for ref in pairs.images] == [tmp_path / "faces" / f"img{i}.png" for i in (0, 1, 2)]
    assert pairs.a.tolist() == [0, 0] and pairs.b.tolist() == [1, 2]  # img0 listed once
    assert pairs.same.tolist() == [True, False] and pairs.folds is None
    assert pairs.images[0].load_rgb().shape == (24, 24, 3)


def test_csv_without_header_and_every_boolean_form(tmp_path, csv_images):
    forms = ["1", "0", "true", "false", "yes", "no", " TRUE ", "No"]
    path = tmp_path / "pairs.csv"
    path.write_text("".join(f"faces/img0.png,faces/img{1 + k % 3}.png,{s}\n" for k, s in enumerate(forms)))
    assert read_pairs(path).same.tolist() == [True, False, True, False, True, False, True, False]


def test_csv_relative_paths_resolve_against_root_and_absolute_paths_stay(tmp_path, csv_images):
    path = tmp_path / "lists" / "pairs.csv"
    path.parent.mkdir()
    path.write_text(f"img0.png,{csv_images[3]},yes\n")
    pairs = read_pairs(path, root=tmp_path / "faces")
    assert [ref.path for ref in pairs.images] == [tmp_path / "faces" / "img0.png", csv_images[3]]


def test_csv_bad_label_names_file_and_line(tmp_path, csv_images):
    path = tmp_path / "pairs.csv"
    path.write_text("path_a,path_b,same\nfaces/img0.png,faces/img1.png,1\nfaces/img0.png,faces/img1.png,maybe\n")
    with pytest.raises(ValueError, match=r"pairs\.csv:3: 'same' must be .*'maybe'"):
        read_pairs(path)


def test_csv_wrong_field_count_names_file_and_line(tmp_path, csv_images):
    path = tmp_path / "pairs.csv"
    path.write_text("faces/img0.png,faces/img1.png,1\nfaces/img0.png,1\n")
    with pytest.raises(ValueError, match=r"pairs\.csv:2: expected 3 fields"):
        read_pairs(path)


def test_csv_missing_images_are_listed_with_total_count(tmp_path, csv_images):
    path = tmp_path / "pairs.csv"
    path.write_text("".join(f"faces/img0.png,faces/gone{k}.png,0\n" for k in range(7)))
    with pytest.raises(FileNotFoundError) as info:
        read_pairs(path)
    message = str(info.value)
    assert str(path) in message and "7 image(s) not found" in message and "... and 2 more" in message
    assert "gone0.png" in message and "gone4.png" in message and "gone5.png" not in message


def test_write_csv_pairs_reads_back(tmp_path, csv_images):
    rows = [(csv_images[0], csv_images[1], True), (csv_images[2], csv_images[3], False)]
    pairs = read_pairs(write_csv_pairs(tmp_path / "out.csv", rows))
    assert [ref.path for ref in pairs.images] == csv_images and pairs.same.tolist() == [True, False]


# ---- LFW pairs.txt -------------------------------------------------------------------------------------------------


def _fake_lfw(root: Path) -> None:
    """Four identities; Bob_Two's second image is a PNG, to check that any image extension resolves."""
    for seed, (name, k, ext) in enumerate(
        [("Ann_One", 1, "jpg"), ("Ann_One", 2, "jpg"), ("Bob_Two", 1, "jpg"), ("Bob_Two", 2, "png"),
         ("Cat_Three", 1, "jpg"), ("Dan_Four", 1, "jpg")]
    ):  # fmt: skip
        _write_image(root / name / f"{name}_{k:04d}.{ext}", seed)


LFW_TXT = "2\t1\nAnn_One\t1\t2\nAnn_One\t1\tCat_Three\t1\nBob_Two\t1\t2\nCat_Three\t1\tDan_Four\t1\n"


def test_lfw_pairs_resolve_images_and_keep_official_folds(tmp_path):
    _fake_lfw(tmp_path)
    (tmp_path / "pairs.txt").write_text(LFW_TXT)
    pairs = read_pairs(tmp_path / "pairs.txt")
    names = [ref.path.relative_to(tmp_path).as_posix() for ref in pairs.images]
    assert names == [
        "Ann_One/Ann_One_0001.jpg",
        "Ann_One/Ann_One_0002.jpg",
        "Cat_Three/Cat_Three_0001.jpg",
        "Bob_Two/Bob_Two_0001.jpg",
        "Bob_Two/Bob_Two_0002.png",
        "Dan_Four/Dan_Four_0001.jpg",
    ]
    assert pairs.a.tolist() == [0, 0, 3, 2] and pairs.b.tolist() == [1, 2, 4, 5]
    assert pairs.same.tolist() == [True, False, True, False]
    assert pairs.folds.tolist() == [0, 0, 1, 1]
    assert pairs.images[4].load_rgb().shape == (24, 24, 3)


def test_lfw_pairs_file_elsewhere_uses_root(tmp_path):
    _fake_lfw(tmp_path / "lfw")
    (tmp_path / "pairs.txt").write_text(LFW_TXT)
    pairs = read_pairs(tmp_path / "pairs.txt", root=tmp_path / "lfw")
    assert all(ref.path.is_file() for ref in pairs.images)


def test_lfw_single_fold_file_leaves_folds_to_the_protocol(tmp_path):
    _fake_lfw(tmp_path)
    (tmp_path / "pairsDevTest.txt").write_text("1\nAnn_One\t1\t2\nCat_Three\t1\tDan_Four\t1\n")
    assert read_pairs(tmp_path / "pairsDevTest.txt").folds is None


def test_lfw_missing_images_are_named(tmp_path):
    _fake_lfw(tmp_path)
    lines = [f"Ann_One\t1\tNobody_{k}\t1" for k in range(7)]
    (tmp_path / "pairs.txt").write_text("1\t7\n" + "Ann_One\t1\t2\n" * 7 + "\n".join(lines))
    with pytest.raises(FileNotFoundError) as info:
        read_pairs(tmp_path / "pairs.txt")
    message = str(info.value)
    assert str(tmp_path / "pairs.txt") in message and "7 image(s) not found" in message
    assert "Nobody_0/Nobody_0_0001.jpg" in message and "... and 2 more" in message


def _shared_lfw() -> Path:
    return real_data("lfw", "pairs.txt")


def test_real_lfw_pairs_give_6000_pairs_in_10_official_folds_with_all_images():
    pairs = read_pairs(_shared_lfw())  # raises if any image is missing
    assert len(pairs) == 6000 and len(pairs.images) == 7701
    assert pairs.folds.tolist() == [k // 600 for k in range(6000)]
    for f in range(10):
        fold = pairs.same[pairs.folds == f]
        assert fold[:300].all() and not fold[300:].any()
    assert pairs.images[pairs.a[0]].path.name == "Abel_Pacheco_0001.jpg"
    assert pairs.images[pairs.b[0]].path.name == "Abel_Pacheco_0004.jpg"


# ---- dispatch and the structure itself -----------------------------------------------------------------------------


def test_unknown_suffix_is_refused(tmp_path):
    (tmp_path / "pairs.json").write_text("[]")
    with pytest.raises(ValueError, match=r"pairs\.json: unknown pair file type"):
        read_pairs(tmp_path / "pairs.json")


def test_missing_pair_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.bin"):
        read_pairs(tmp_path / "nowhere.bin")


def test_pair_list_rejects_mismatched_lengths_and_bad_indices():
    images = [ImageRef.from_bytes(b"x", "x"), ImageRef.from_bytes(b"y", "y")]
    with pytest.raises(ValueError, match="one length"):
        PairList(images, np.array([0]), np.array([1, 0]), np.array([True]), None, "s")
    with pytest.raises(ValueError, match="outside"):
        PairList(images, np.array([0]), np.array([2]), np.array([True]), None, "s")


def test_image_ref_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        ImageRef("both", path=Path("a.jpg"), data=b"x")
