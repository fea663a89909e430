"""Bad input to the readers of user files ends in a `ValueError` / `OSError` that names the file and the problem
(never another exception, a hang or a silent wrong number), and the defects of issue 15: a `pairs.txt` with a
byte-order mark, large images decoded at full size, non-finite landmark coordinates.

Each test below is one case the fuzzing (tests/test_fuzz_readers.py) or the review of a reader found.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from explainface.errors import InputError
from explainface.readers import recordio
from explainface.readers.cfp import read_cfp_pairs
from explainface.readers.folders import IdentityFolderDataset
from explainface.readers.images import (
    MAX_IMAGE_PIXELS,
    decode_image_rgb,
    decode_image_rgb_reduced,
    image_size,
    jpeg_size,
    load_image_rgb,
    load_image_rgb_reduced,
    points_to_full,
    points_to_reduced,
    read_image_rgb,
    reduction_for,
)
from explainface.readers.insightface_bin import write_bin_pairs
from explainface.readers.landmarks import read_coco_keypoints, read_landmarks, read_lapa106, read_pts, read_wflw
from explainface.readers.pairs import ImageRef, read_pairs
from explainface.readers.recordio import (
    IRHeader,
    RecordIODataset,
    RecordIOReader,
    RecordIOWriter,
    pack_header,
    read_property,
    scan_offsets,
    write_recordio_dataset,
)

# ---- pair files ------------------------------------------------------------------------------------------------------


@pytest.fixture
def lfw(tmp_path) -> Path:
    for name, n in (("Alice", 2), ("Bob", 1)):
        (tmp_path / name).mkdir()
        for k in range(1, n + 1):
            (tmp_path / name / f"{name}_{k:04d}.jpg").write_bytes(b"x")
    return tmp_path


def test_lfw_pairs_txt_with_a_byte_order_mark_reads_as_without(lfw):
    text = "1\t1\nAlice\t1\t2\nAlice\t1\tBob\t1\n"
    (lfw / "plain.txt").write_text(text)
    (lfw / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    plain, bom = read_pairs(lfw / "plain.txt"), read_pairs(lfw / "bom.txt")
    assert len(bom) == 2 and bom.same.tolist() == [True, False]
    assert [r.path for r in bom.images] == [r.path for r in plain.images]
    assert bom.a.tolist() == plain.a.tolist() and bom.b.tolist() == plain.b.tolist()


@pytest.mark.parametrize("suffix, text", [(".txt", b"1\t1\nAl\xe9\t1\t2\n"), (".csv", b"a.jpg,\xff.jpg,1\n")])
def test_pair_file_that_is_not_utf8_is_named(lfw, suffix, text):
    path = lfw / f"latin1{suffix}"
    path.write_bytes(text)
    with pytest.raises(InputError, match=rf"latin1\{suffix}: .*not UTF-8 text \(invalid .* at byte \d+\)"):
        read_pairs(path)


def test_csv_field_over_the_csv_size_limit_names_file_and_line(lfw):
    (lfw / "a.jpg").write_bytes(b"x")
    path = lfw / "big.csv"
    path.write_text("a.jpg,a.jpg,1\n" + "a" * 200_000 + ",a.jpg,1\n")
    with pytest.raises(InputError, match=r"big\.csv:2: not a readable CSV line \(field larger than field limit"):
        read_pairs(path)


@pytest.mark.parametrize("name", ["Ali\x00ce", "A" * 5000], ids=["nul_byte", "too_long"])
def test_lfw_name_the_os_refuses_is_a_missing_image_named_with_the_pairs_file(lfw, name):
    path = lfw / "pairs.txt"
    path.write_text(f"1\t1\n{name}\t1\t2\nAlice\t1\tBob\t1\n")
    with pytest.raises(FileNotFoundError, match=r"pairs\.txt: 2 image\(s\) not found"):
        read_pairs(path)


def test_csv_path_too_long_for_the_os_is_a_missing_image_named_with_the_csv(lfw):
    (lfw / "a.jpg").write_bytes(b"x")
    path = lfw / "pairs.csv"
    path.write_text(f"a.jpg,{'b' * 5000}.jpg,1\n")
    with pytest.raises(FileNotFoundError, match=r"pairs\.csv: 1 image\(s\) not found"):
        read_pairs(path)


def _bin_with_issame(tmp_path: Path, opcodes: bytes) -> Path:
    """A protocol-2 pair .bin whose single issame entry is the object `opcodes` build."""
    data = pickle.dumps(([b"a", b"b"], [123456789]), protocol=2)
    marker = b"J" + struct.pack("<i", 123456789)
    assert data.count(marker) == 1
    path = tmp_path / "odd.bin"
    path.write_bytes(data.replace(marker, opcodes))
    return path


@pytest.mark.parametrize(
    "opcodes, problem",
    [(b"\x8b\x00\x08\x00\x00" + b"\x01" * 2047 + b"\x7f", r"issame\[0\] is an int of 16383 bits"),  # LONG4 ~2^16382
     (b"(" * 100_000 + b"l" * 100_000, r"issame\[0\] is list of length 1"),  # lists nested 100000 deep
     (b"X\x00\x00\x10\x00" + b"y" * (1 << 20), r"issame\[0\] is 'yyyy")],  # a 1 MB string, quoted short
    ids=["huge_int", "deep_list", "long_string"],
)  # fmt: skip
def test_bin_issame_of_odd_values_is_described_briefly_with_the_file(tmp_path, opcodes, problem):
    path = _bin_with_issame(tmp_path, opcodes)
    with pytest.raises(ValueError, match=rf"odd\.bin: {problem}") as caught:
        read_pairs(path)
    assert len(str(caught.value)) < 400


def test_bin_length_field_past_the_end_is_a_value_error(tmp_path):
    data = pickle.dumps(([b"a" * 300, b"b" * 300], [True]), protocol=3)
    field = b"B" + struct.pack("<I", 300) + b"a" * 300  # BINBYTES of 300 bytes -> BINBYTES8 claiming 2^40
    assert data.count(field) == 1
    path = tmp_path / "long.bin"
    path.write_bytes(data.replace(field, b"\x8e" + struct.pack("<Q", 1 << 40) + b"a" * 300))
    with pytest.raises(ValueError, match=r"long\.bin: not a readable pickle"):
        read_pairs(path)


def test_bin_written_by_us_still_reads(tmp_path):
    image = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    pl = read_pairs(write_bin_pairs(tmp_path / "ok.bin", [image] * 4, [True, False]))
    assert len(pl) == 2 and pl.images[3].load_rgb().shape == (4, 4, 3)


# ---- CFP -------------------------------------------------------------------------------------------------------------


def _cfp(root: Path, f_list: bytes, same: bytes = b"1,2\n", diff: bytes = b"1,2\n") -> Path:
    (root / "Protocol" / "Split" / "FF" / "01").mkdir(parents=True)
    (root / "Protocol" / "Pair_list_F.txt").write_bytes(f_list)
    (root / "Protocol" / "Pair_list_P.txt").write_bytes(b"1 ../img/p1.jpg\n")
    (root / "Protocol" / "Split" / "FF" / "01" / "same.txt").write_bytes(same)
    (root / "Protocol" / "Split" / "FF" / "01" / "diff.txt").write_bytes(diff)
    (root / "img").mkdir()
    for name in ("f1.jpg", "f2.jpg", "p1.jpg"):
        (root / "img" / name).write_bytes(b"x")
    return root


def test_cfp_reads_a_list_with_a_byte_order_mark(tmp_path):
    root = _cfp(tmp_path, b"\xef\xbb\xbf1 ../img/f1.jpg\r\n2 ../img/f2.jpg\r\n")
    pl = read_cfp_pairs(root, "FF")
    assert len(pl) == 2 and [r.path.name for r in pl.images] == ["f1.jpg", "f2.jpg"]


@pytest.mark.parametrize(
    "f_list, problem",
    [(b"\xc2\xb2 ../img/f1.jpg\n", r"Pair_list_F\.txt:1: expected '<index> <image path>', got '\u00b2 "),
     (b"9" * 5000 + b" ../img/f1.jpg\n", r"Pair_list_F\.txt:1: expected '<index> <image path>', got '99999"),
     (b"1 ../img/f1.jpg\n\xff 2\n", r"Pair_list_F\.txt: CFP pair list is not UTF-8 text")],
    ids=["superscript_two", "5000_digits", "not_utf8"],
)  # fmt: skip
def test_cfp_bad_index_names_the_list_file_and_line(tmp_path, f_list, problem):
    root = _cfp(tmp_path, f_list)
    with pytest.raises(ValueError, match=problem):
        read_cfp_pairs(root, "FF")


def test_cfp_split_with_no_pairs_is_an_error_not_an_empty_pair_list(tmp_path):
    root = _cfp(tmp_path, b"1 ../img/f1.jpg\n2 ../img/f2.jpg\n", same=b"\n", diff=b"")
    with pytest.raises(ValueError, match=r"Split/FF: no pairs"):
        read_cfp_pairs(root, "FF")
    with pytest.raises(ValueError, match=r"Split/FF: no pairs"):
        read_pairs(root / "Protocol" / "Split" / "FF")


# ---- landmarks: non-finite and out-of-float32 coordinates, named by file and line ----------------------------------

BAD_NUMBERS = ["nan", "-inf", "1e999", "1e39", "-1e300"]


def _rows(n: int, bad_row: int, bad: str, offset: float = 0.0) -> list[str]:
    rows = [f"{10 + i + offset:.1f} {20 + i + offset:.1f}" for i in range(n)]
    rows[bad_row] = f"{bad} 5.0"
    return rows


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_pts_with_a_non_finite_or_huge_coordinate_names_file_and_line(tmp_path, bad):
    path = tmp_path / "face.pts"
    path.write_text("version: 1\nn_points: 68\n{\n" + "\n".join(_rows(68, 9, bad, 1)) + "\n}\n")
    for read in (read_pts, read_landmarks):
        with pytest.raises(ValueError, match=rf"face\.pts: malformed \.pts file: line 13: .*{bad}"):
            read(path)


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_lapa_with_a_non_finite_or_huge_coordinate_names_file_and_line(tmp_path, bad):
    path = tmp_path / "face.txt"
    path.write_text("106\n" + "\n".join(_rows(106, 40, bad)) + "\n")
    for read in (read_lapa106, read_landmarks):
        with pytest.raises(ValueError, match=rf"face\.txt: malformed .*: line 42: .*{bad}"):
            read(path)


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_wflw_with_a_non_finite_or_huge_coordinate_names_file_and_line(tmp_path, bad):
    coords = [f"{50 + i % 90}.0" for i in range(196)]
    good = " ".join(coords) + " 1 2 300 300 0 0 0 0 0 0 a/b.jpg"
    coords[7] = bad
    path = tmp_path / "list_98pt.txt"
    path.write_text(good + "\n" + " ".join(coords) + " 1 2 300 300 0 0 0 0 0 0 a/c.jpg\n")
    with pytest.raises(
        ValueError, match=r"list_98pt\.txt: malformed WFLW annotation file: line 2: (non-finite|.*float32)"
    ):
        read_wflw(path)


@pytest.mark.parametrize(
    "value, problem",
    [("NaN", "non-finite"), ("Infinity", "non-finite"), ("1e39", "float32"), ("1" + "0" * 400, "non-finite"),
     ("1" + "0" * 5000, "invalid JSON")],
    ids=["nan", "infinity", "1e39", "int_1e400", "int_5000_digits"],
)  # fmt: skip
def test_coco_keypoint_out_of_range_names_the_file_and_annotation(tmp_path, value, problem):
    kpts = ", ".join(["10, 20, 2"] * 67 + [f"{value}, 5, 2"])
    path = tmp_path / "kp.json"
    path.write_text(f'{{"images": [{{"id": 1, "file_name": "a.jpg"}}], '
                    f'"annotations": [{{"id": 4, "image_id": 1, "keypoints": [{kpts}]}}]}}')  # fmt: skip
    with pytest.raises(ValueError, match=rf"kp\.json: malformed COCO keypoint file: .*{problem}"):
        read_coco_keypoints(path)


def test_coco_unlabelled_point_may_hold_anything_and_becomes_nan(tmp_path):
    kpts = [10.0, 20.0, 2] * 67 + [float("nan"), 1e300, 0]
    path = tmp_path / "kp.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                "annotations": [{"id": 4, "image_id": 1, "keypoints": kpts}]}))  # fmt: skip
    (points,) = read_coco_keypoints(path)["a.jpg"]
    assert points.dtype == np.float32 and np.isnan(points[67]).all() and np.isfinite(points[:67]).all()


def test_coco_nested_too_deeply_is_named(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match=r"deep\.json: malformed COCO keypoint file: JSON nested too deeply"):
        read_coco_keypoints(path)


def test_landmark_far_outside_the_image_but_finite_is_read(tmp_path):
    """1e9 is a number: the reader keeps it (it is what the file says); the consumers judge it against the image
    (`readers.landmarks.check_landmarks_in_image`, and the folder dataset below)."""
    path = tmp_path / "face.pts"
    path.write_text("\n".join(_rows(68, 0, "1e9", 1)) + "\n")
    assert read_pts(path)[0, 0] == np.float32(1e9 - 1)


def test_folder_dataset_takes_landmarks_far_outside_the_image_as_unknown(tmp_path):
    (tmp_path / "a").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "x.png"), np.full((60, 60, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "a" / "y.png"), np.full((60, 60, 3), 128, np.uint8))
    (tmp_path / "a" / "x.pts").write_text("\n".join(_rows(68, 3, "1e9", -5)) + "\n")
    (tmp_path / "a" / "y.pts").write_text("\n".join(_rows(68, 3, "12", -5)) + "\n")
    ds = IdentityFolderDataset(tmp_path, size=20, landmarks=True)
    with pytest.warns(UserWarning, match=r"x\.pts: the landmarks lie outside the image.*taken as unknown"):
        far = ds[0][2]
    assert far.isnan().all() and ds[1][2].isfinite().all()


# ---- RecordIO --------------------------------------------------------------------------------------------------------


def _jpeg(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return cv2.imencode(".jpg", rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))[1].tobytes()


@pytest.fixture
def rec_dir(tmp_path) -> Path:
    write_recordio_dataset(tmp_path, [(_jpeg(i), i // 2) for i in range(4)], height=12, width=12)
    return tmp_path


@pytest.mark.parametrize("line", ["1\t18446744073709551616", "99999999999999999999\t0", "1\t0x10"])
def test_idx_with_numbers_beyond_int64_names_file_and_line(rec_dir, line):
    (rec_dir / "train.idx").write_text("0\t0\n" + line + "\n")
    with pytest.raises(ValueError, match=r"train\.idx:2: expected 'key<TAB>offset'"):
        RecordIOReader(rec_dir / "train.rec")


def test_record_length_past_the_end_never_asks_for_more_than_the_file_holds(tmp_path, monkeypatch):
    (tmp_path / "r.rec").write_bytes(struct.pack("<II", recordio.MAGIC, (1 << 29) - 1) + b"x" * 100)
    asked = []
    real_pread = os.pread
    monkeypatch.setattr(recordio.os, "pread", lambda fd, n, off: asked.append(n) or real_pread(fd, n, off))
    (tmp_path / "r.idx").write_text("0\t0\n")
    reader = RecordIOReader(tmp_path / "r.rec")
    with pytest.raises(
        ValueError, match=rf"r\.rec: truncated record at offset 0: {(1 << 29) - 1} bytes announced, 100"
    ):
        reader.read(0)
    assert max(asked) <= 108


@pytest.mark.parametrize("flags", [(5,), (2,), (1, 0), (3,)], ids=["flag_5", "middle_alone", "first_then_whole",
                                                                   "last_alone"])  # fmt: skip
def test_scan_refuses_parts_out_of_order(tmp_path, flags):
    data = b"".join(struct.pack("<II", recordio.MAGIC, (f << 29) | 4) + b"abcd" for f in flags)
    (tmp_path / "s.rec").write_bytes(data)
    with pytest.raises(ValueError, match=r"s\.rec: (unexpected continuation flag|truncated record)"):
        scan_offsets(tmp_path / "s.rec")


def _rewrite_meta(rec_dir: Path, first: float, end: float) -> None:
    data = bytearray((rec_dir / "train.rec").read_bytes())
    meta = pack_header(IRHeader(2, np.array([first, end], np.float32), 0, 0))
    data[8 : 8 + len(meta)] = meta
    (rec_dir / "train.rec").write_bytes(bytes(data))


@pytest.mark.parametrize("first, end", [(float("nan"), 9), (float("inf"), 9), (2.5, 9), (0, 9), (6, 2)])
def test_meta_record_with_nonsense_key_range_is_named(rec_dir, first, end):
    _rewrite_meta(rec_dir, first, end)
    with pytest.raises(InputError, match=r"train\.rec: meta record 0 names .*not a valid key range"):
        RecordIODataset(rec_dir)


def test_meta_record_naming_a_billion_images_neither_allocates_nor_hangs(rec_dir):
    _rewrite_meta(rec_dir, 1e9, 1e9 + 2)
    start = time.perf_counter()
    with pytest.warns(UserWarning, match=r"999999993 of the 999999999 image keys named by meta record 0 are missing"):
        ds = RecordIODataset(rec_dir)
    assert time.perf_counter() - start < 1 and list(ds.keys) == [1, 2, 3, 4, 5, 6]  # np.arange(1e9) was 8 GB


def test_meta_record_naming_more_identities_than_the_index_holds_is_named(rec_dir):
    _rewrite_meta(rec_dir, 5, 5 + 10**6)
    with pytest.raises(InputError, match=r"train\.rec: meta record 0 names 1000000 identity records"):
        RecordIODataset(rec_dir)


@pytest.mark.parametrize("text", [b"0,112,112", b"-3,112,112", b"\xff\xfe2,1,1"])
def test_property_must_hold_positive_integers_in_utf8(tmp_path, text):
    (tmp_path / "property").write_bytes(text)
    with pytest.raises(ValueError, match=r"property: expected 'num_classes,height,width'"):
        read_property(tmp_path)


@pytest.mark.parametrize("label", [float("nan"), float("inf"), -1.0, 2.5, 2.0**30])
def test_record_label_that_is_no_class_number_is_named(tmp_path, label):
    with RecordIOWriter(tmp_path / "train.rec") as w:
        w.write(0, pack_header(IRHeader(0, 0.0, 0, 0), _jpeg()))
        w.write(1, pack_header(IRHeader(0, label, 1, 0), _jpeg()))
    ds = RecordIODataset(tmp_path, bad="raise")
    with pytest.raises(InputError, match=r"train\.rec: record key 1: label .* is not a class number"):
        assert ds.num_classes is None
    with pytest.raises(ValueError, match=r"bad record key 1 in .*train\.rec: label .* is not a class number"):
        ds[1]


def test_record_label_beyond_the_declared_classes_is_a_bad_record(rec_dir):
    (rec_dir / "property").write_text("1,12,12\n")  # the records hold classes 0 and 1
    ds = RecordIODataset(rec_dir, bad="raise")
    assert ds[0][1] == 0
    with pytest.raises(ValueError, match=r"bad record key 3 in .*train\.rec: label 1 is outside the 1 classes"):
        ds[2]


def test_recordio_without_images_is_named(tmp_path):
    (tmp_path / "train.rec").write_bytes(b"")
    (tmp_path / "train.idx").write_text("")
    with pytest.raises(InputError, match=r"train\.rec: no image records"):
        RecordIODataset(tmp_path)


# ---- folders ---------------------------------------------------------------------------------------------------------


def test_folder_of_only_bad_images_is_a_user_error_naming_the_root(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=rf"{tmp_path}: no usable image file left: all 1 items are bad") as e:
            IdentityFolderDataset(tmp_path)[0]
    assert isinstance(e.value, RuntimeError)  # what it was before


# ---- images: errors ----------------------------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


@pytest.mark.parametrize(
    "data", [_png_claiming(100_000, 100_000), _png_claiming(20_000, 20_000), _jpeg_claiming(20_000, 20_000),
             _jpeg_claiming(65_535, 65_535)],
    ids=["png_1e10_px", "png_4e8_px", "jpeg_4e8_px", "jpeg_4e9_px"],
)  # fmt: skip
def test_image_header_claiming_too_many_pixels_is_refused_before_decoding(data):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"claimed\.img: the header says \d+ x \d+ pixels, more than the"):
        decode_image_rgb(data, "claimed.img")
    assert time.perf_counter() - start < 0.5


def test_opencv_assertion_on_a_header_becomes_a_value_error_naming_the_image(monkeypatch):
    def refuse(buf, flags):
        raise cv2.error("OpenCV(4.x) loadsave.cpp:79: error: (-215:Assertion failed) pixels <= ... ")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    with pytest.raises(ValueError, match=r"odd\.png: not a decodable image \(OpenCV.*Assertion failed"):
        decode_image_rgb(b"\x89PNG\r\n\x1a\n", "odd.png")


def test_image_path_with_a_nul_byte_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"a\\x00b\.jpg'?: cannot open"):
        load_image_rgb(tmp_path / "a\x00b.jpg")
    assert read_image_rgb(tmp_path / "a\x00b.jpg") is None


@pytest.mark.parametrize("max_side", [0, -5, 2.5, True, "64"])
def test_max_side_must_be_a_positive_integer(max_side):
    with pytest.raises(ValueError, match="max_side must be a positive integer"):
        decode_image_rgb(b"\xff", "x", max_side=max_side)


# ---- images: decoding large images reduced -----------------------------------------------------------------------


def _big(side: int) -> np.ndarray:
    """A smooth BGR image (quick to encode) with a white 16 x 16 square whose top-left corner is at (4000, 1000)."""
    ramp = np.linspace(0, 200, side, dtype=np.float32)
    image = np.empty((side, side, 3), np.uint8)
    image[..., 0] = ramp[None, :]
    image[..., 1] = ramp[:, None]
    image[..., 2] = 60
    image[1000:1016, 4000:4016] = 255
    return image


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    assert cv2.imwrite(str(path), _big(6000), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


@pytest.mark.slow
@pytest.mark.parametrize("max_side, k", [(None, 1), (6000, 1), (5000, 1), (3000, 2), (2999, 2), (1500, 4),
                                         (1000, 4), (750, 8), (112, 8), (1, 8)])  # fmt: skip
def test_big_jpeg_decodes_reduced_keeping_the_long_side_at_least_max_side(big_jpeg, max_side, k):
    image, factor = load_image_rgb_reduced(big_jpeg, max_side)
    assert factor == k and image.shape == (6000 // k, 6000 // k, 3) and image.dtype == np.uint8
    if k > 1:
        assert np.array_equal(load_image_rgb(big_jpeg, max_side), image)


def test_reduced_pixel_maps_back_to_the_full_image_by_the_factor(big_jpeg):
    image, k = load_image_rgb_reduced(big_jpeg, 700)
    assert k == 8
    white = np.argwhere(image.min(axis=2) > 240)  # (row, col) of the white square, reduced
    full_x, full_y = points_to_full(white.mean(axis=0)[::-1], k)
    assert abs(full_x - 4007.5) <= 4 and abs(full_y - 1007.5) <= 4  # the square's centre, within half a block
    assert np.allclose(points_to_reduced(points_to_full(white[:3, ::-1], 8), 8), white[:3, ::-1])


def test_pair_image_ref_decodes_reduced(big_jpeg):
    assert ImageRef.from_path(big_jpeg).load_rgb(max_side=1000).shape == (1500, 1500, 3)
    data = cv2.imencode(".jpg", np.zeros((64, 32, 3), np.uint8))[1].tobytes()
    assert ImageRef.from_bytes(data, "x.bin[0]").load_rgb(max_side=16).shape == (16, 8, 3)
    assert ImageRef.from_bytes(data, "x.bin[0]").load_rgb().shape == (64, 32, 3)


def test_png_decodes_at_full_size_then_averages_blocks(tmp_path):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (203, 130, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), bgr)
    image, k = load_image_rgb_reduced(path, 50)
    assert k == 4 and image.shape == (50, 32, 3)  # floor(203 / 4), floor(130 / 4)
    blocks = bgr[:200, :128].reshape(50, 4, 32, 4, 3).astype(np.float64).mean(axis=(1, 3))[..., ::-1]
    assert np.abs(image - blocks).max() <= 1


def test_header_sizes():
    jpeg = cv2.imencode(".jpg", np.zeros((30, 50, 3), np.uint8))[1]
    progressive = cv2.imencode(".jpg", np.zeros((31, 7, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    png = cv2.imencode(".png", np.zeros((9, 4, 3), np.uint8))[1].tobytes()
    assert jpeg_size(jpeg) == image_size(jpeg.tobytes()) == (50, 30) and jpeg_size(progressive) == (7, 31)
    assert image_size(png) == (4, 9) and jpeg_size(png) is None and image_size(b"BM") is None
    assert jpeg_size(b"\xff\xd8\xff\xe0\x00") is None  # cut inside the first segment
    assert reduction_for(6000, 4000, None) == 1 and reduction_for(100, 100, 101) == 1
    assert reduction_for(1001, 10, 126) == 8 and reduction_for(1001, 10, 126, jpeg=False) == 4
    assert MAX_IMAGE_PIXELS == 1 << 28


def test_default_decode_is_unchanged_for_small_images():
    bgr = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    data = cv2.imencode(".png", bgr)[1].tobytes()
    assert np.array_equal(decode_image_rgb(data), bgr[..., ::-1])
    assert np.array_equal(decode_image_rgb_reduced(data, max_side=10)[0], decode_image_rgb(data, max_side=10))
    image, k = decode_image_rgb_reduced(data, max_side=64)
    assert k == 1 and np.array_equal(image, bgr[..., ::-1])


_PEAK = textwrap.dedent(
    """
    import sys
    from explainface.readers.images import load_image_rgb

    def status(key):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

    with open("/proc/self/clear_refs", "w") as f:  # peak RSS := current RSS, so imports do not count
        f.write("5")
    before = status("VmRSS:")
    image = load_image_rgb(sys.argv[1], None if sys.argv[2] == "none" else int(sys.argv[2]))
    print(image.shape[0], (status("VmHWM:") - before) // 1024)
    """
)


def _peak_mb(path: Path, max_side: str) -> tuple[int, int]:
    """(decoded side, peak resident memory of the decoding in MB), in a fresh process; cv2's allocations are
    invisible to tracemalloc, so the kernel's peak RSS is measured."""
    out = subprocess.run([sys.executable, "-c", _PEAK, str(path), max_side], capture_output=True, text=True, check=True)
    side, mb = out.stdout.split()
    return int(side), int(mb)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="peak RSS reset needs Linux /proc")
def test_reduced_decoding_of_a_big_jpeg_never_holds_the_full_image(big_jpeg):
    """6000 x 6000 RGB is 108 MB; decoding it whole peaks at two copies (BGR and RGB), reduced by 8 at two of 1.7 MB."""
    full_side, full_mb = _peak_mb(big_jpeg, "none")
    small_side, small_mb = _peak_mb(big_jpeg, "700")
    assert (full_side, small_side) == (6000, 750)
    assert full_mb > 150 and small_mb < 40, (full_mb, small_mb)
