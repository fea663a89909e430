"""insightface RecordIO without mxnet: dmlc-core record framing (split at the magic number), image-record headers,
the meta-record convention, `property`, clear errors on corrupt files, and the Dataset in DataLoader workers."""

import pickle
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from explainface.inputs import to_tensor
from explainface.readers.images import decode_image_rgb
from explainface.readers.recordio import (
    MAGIC,
    IRHeader,
    RecordIODataset,
    RecordIOReader,
    RecordIOWriter,
    encode_record,
    pack_header,
    read_property,
    scan_offsets,
    unpack_header,
    write_property,
    write_recordio_dataset,
)
from explainface.synthetic import SyntheticFaces

MAGIC_BYTES = struct.pack("<I", MAGIC)
IDS, PER_ID, SIZE = 4, 3, 64


def _jpeg(identity: int, k: int) -> bytes:
    rgb = SyntheticFaces(0).sample(identity, k, SIZE).image
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.fixture(scope="module")
def jpegs() -> list[tuple[bytes, int]]:
    """(JPEG bytes, label) grouped by identity."""
    return [(_jpeg(i, k), i) for i in range(IDS) for k in range(PER_ID)]


def _parts(path: Path) -> list[tuple[int, int]]:
    """(continuation flag, length) of every part on disk, walking the file by the lengths."""
    data, pos, parts = path.read_bytes(), 0, []
    while pos < len(data):
        magic, lrec = struct.unpack_from("<II", data, pos)
        assert magic == MAGIC
        parts.append((lrec >> 29, lrec & ((1 << 29) - 1)))
        pos += 8 + parts[-1][1] + (-parts[-1][1] % 4)
    return parts


def test_written_records_read_back_byte_identical_in_random_access_order(tmp_path, jpegs):
    payloads = {
        100 + 3 * n: pack_header(IRHeader(0, float(label), n, 0), image) for n, (image, label) in enumerate(jpegs)
    }
    with RecordIOWriter(tmp_path / "a.rec", tmp_path / "a.idx") as w:
        for key, payload in payloads.items():
            w.write(key, payload)
    order = np.random.default_rng(0).permutation(list(payloads)).tolist()
    with RecordIOReader(tmp_path / "a.rec", tmp_path / "a.idx") as r:
        assert r.keys == list(payloads)
        assert [r.read(k) for k in order] == [payloads[k] for k in order]
    lines = (tmp_path / "a.idx").read_text().splitlines()
    assert lines[0] == "100\t0" and all(len(line.split("\t")) == 2 for line in lines)


def test_payload_holding_the_magic_number_is_split_into_parts_and_reads_back_identically(tmp_path, jpegs):
    # id at header offset 8, id2 at 16 and 20: three aligned magics, two of them adjacent (an empty middle part)
    magic_id = MAGIC
    magic_id2 = MAGIC | (MAGIC << 32)
    payload = pack_header(IRHeader(0, 7.0, magic_id, magic_id2), jpegs[0][0])
    assert payload.count(MAGIC_BYTES) >= 3
    with RecordIOWriter(tmp_path / "s.rec") as w:
        w.write(0, pack_header(IRHeader(0, 1.0, 0, 0), jpegs[1][0]))
        w.write(1, payload)
        w.write(2, pack_header(IRHeader(0, 2.0, 0, 0), jpegs[2][0]))
        assert w.splits == 3
    flags = [flag for flag, _ in _parts(tmp_path / "s.rec")]
    assert flags == [0, 1, 2, 2, 3, 0]
    assert [length for _, length in _parts(tmp_path / "s.rec")][1:4] == [8, 4, 0]
    r = RecordIOReader(tmp_path / "s.rec")
    assert r.read(1) == payload and r.read(2) == pack_header(IRHeader(0, 2.0, 0, 0), jpegs[2][0])
    header, image = unpack_header(r.read(1))
    assert header == IRHeader(0, 7.0, magic_id, magic_id2) and image == jpegs[0][0]


def test_split_record_layout_matches_dmlc_core():
    # dmlc RecordIOWriter::WriteRecord on "1234" + magic + "xy": part (flag 1, len 4), part (flag 3, len 2), pad 2
    got = encode_record(b"1234" + MAGIC_BYTES + b"xy")
    want = MAGIC_BYTES + struct.pack("<I", 1 << 29 | 4) + b"1234" + MAGIC_BYTES + struct.pack("<I", 3 << 29 | 2)
    assert got == want + b"xy\x00\x00"
    assert encode_record(b"abc") == MAGIC_BYTES + struct.pack("<I", 3) + b"abc\x00"
    assert encode_record(MAGIC_BYTES) == MAGIC_BYTES + struct.pack("<II", 1 << 29, MAGIC) + struct.pack("<I", 3 << 29)


def test_magic_number_at_unaligned_offset_is_not_split(tmp_path):
    payload = b"12" + MAGIC_BYTES + b"345"
    with RecordIOWriter(tmp_path / "u.rec") as w:
        w.write(0, payload)
        assert w.splits == 0
    assert _parts(tmp_path / "u.rec") == [(0, len(payload))]
    assert RecordIOReader(tmp_path / "u.rec").read(0) == payload


@pytest.mark.parametrize("payload", [b"", MAGIC_BYTES, MAGIC_BYTES * 3, b"abcd" + MAGIC_BYTES, MAGIC_BYTES + b"q"])
def test_edge_payloads_round_trip(tmp_path, payload):
    with RecordIOWriter(tmp_path / "e.rec") as w:
        w.write(0, payload)
        w.write(1, b"next")
    r = RecordIOReader(tmp_path / "e.rec")
    assert r.read(0) == payload and r.read(1) == b"next"


def test_extra_labels_set_flag_and_read_back_as_float32_array(tmp_path, jpegs):
    payload = pack_header(IRHeader(0, [3.0, 0.25, -1.5], 9, 10), jpegs[0][0])
    header, image = unpack_header(payload)
    assert header.flag == 3 and header.id == 9 and header.id2 == 10 and image == jpegs[0][0]
    assert header.label.dtype == np.float32 and header.label.tolist() == [3.0, 0.25, -1.5]
    assert unpack_header(pack_header(IRHeader(5, 2.0, 1, 2), b"x")) == (IRHeader(0, 2.0, 1, 2), b"x")  # as mxnet


def test_header_is_little_endian_ifqq():
    payload = pack_header(IRHeader(0, 1.5, 2, 3), b"img")
    assert payload == struct.pack("<IfQQ", 0, 1.5, 2, 3) + b"img" and len(payload) == 24 + 3


def test_short_record_raises_value_error():
    with pytest.raises(ValueError, match="shorter than the 24-byte"):
        unpack_header(b"\x00" * 10)
    with pytest.raises(ValueError, match="says 4 labels"):
        unpack_header(struct.pack("<IfQQ", 4, 0, 0, 0) + b"\x00" * 8)


@pytest.fixture(scope="module")
def face_rec(tmp_path_factory, jpegs) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("rec")
    return out, write_recordio_dataset(out, jpegs, height=SIZE, width=SIZE)


def test_meta_record_0_names_the_identity_records_and_images_are_keys_1_to_n(face_rec):
    out, summary = face_rec
    n = IDS * PER_ID
    assert summary["images"] == n and summary["classes"] == IDS
    r = RecordIOReader(out / "train.rec")
    meta, image = unpack_header(r.read(0))
    assert meta.flag == 2 and image == b"" and meta.label.tolist() == [n + 1, n + 1 + IDS]
    ranges = [unpack_header(r.read(k))[0].label.tolist() for k in range(n + 1, n + 1 + IDS)]
    assert ranges == [[1 + c * PER_ID, 1 + (c + 1) * PER_ID] for c in range(IDS)]
    ds = RecordIODataset(out, size=SIZE)
    assert list(ds.keys) == list(range(1, n + 1)) and ds.identity_keys == range(n + 1, n + 1 + IDS)


def test_dataset_returns_decoded_rgb_tensors_and_labels(face_rec, jpegs):
    ds = RecordIODataset(face_rec[0], size=32)
    assert len(ds) == len(jpegs)
    for i in (0, 5, 11):
        image, label = ds[i]
        expected = to_tensor(cv2.resize(decode_image_rgb(jpegs[i][0]), (32, 32), interpolation=cv2.INTER_AREA))
        assert label == jpegs[i][1] and torch.equal(image, expected)


def test_property_file_holds_classes_height_width(tmp_path, face_rec):
    assert (face_rec[0] / "property").read_text().strip() == f"{IDS},{SIZE},{SIZE}"
    write_property(tmp_path, 85742, 112, 112)
    assert read_property(tmp_path) == (85742, 112, 112)
    assert read_property(tmp_path / "nowhere") is None
    (tmp_path / "property").write_text("lots,of,classes")
    with pytest.raises(ValueError, match="property"):
        read_property(tmp_path)


def test_num_classes_from_property_then_meta_record_then_max_label(tmp_path, face_rec, jpegs):
    assert RecordIODataset(face_rec[0]).num_classes == IDS
    write_property(tmp_path, 1000, SIZE, SIZE)
    with RecordIOWriter(tmp_path / "train.rec", tmp_path / "train.idx") as w:
        for key, (image, label) in enumerate(jpegs):
            w.write(key, pack_header(IRHeader(0, float(label), key, 0), image))
    assert RecordIODataset(tmp_path).num_classes == 1000
    (tmp_path / "property").unlink()
    assert RecordIODataset(tmp_path).num_classes == IDS


def test_without_meta_record_every_key_is_an_image_even_record_0_with_extra_labels(tmp_path, jpegs):
    with RecordIOWriter(tmp_path / "plain.rec") as w:
        w.write(0, pack_header(IRHeader(0, [2.0, 30.0], 0, 0), jpegs[6][0]))  # flag 2 but an image: not meta
        w.write(1, pack_header(IRHeader(0, 3.0, 1, 0), jpegs[9][0]))
    ds = RecordIODataset(tmp_path / "plain.rec", size=SIZE)
    assert list(ds.keys) == [0, 1] and ds.identity_keys is None
    assert [ds[0][1], ds[1][1]] == [2, 3]


def test_corrupted_magic_raises_value_error_naming_file_and_offset(tmp_path, face_rec):
    out = tmp_path / "bad"
    out.mkdir()
    data = bytearray((face_rec[0] / "train.rec").read_bytes())
    r = RecordIOReader(face_rec[0] / "train.rec")
    offset = r.offset(5)
    data[offset : offset + 4] = b"\xde\xad\xbe\xef"
    (out / "corrupt.rec").write_bytes(bytes(data))
    (out / "corrupt.idx").write_bytes((face_rec[0] / "train.idx").read_bytes())
    with pytest.raises(ValueError, match=rf"corrupt\.rec: bad magic number 0xEFBEADDE at offset {offset}\b"):
        RecordIOReader(out / "corrupt.rec").read(5)
    with pytest.raises(ValueError, match=rf"corrupt\.rec: bad magic number .* at offset {offset}\b"):
        scan_offsets(out / "corrupt.rec")


def test_truncated_rec_raises_value_error_naming_file_and_offset(tmp_path, face_rec):
    data = (face_rec[0] / "train.rec").read_bytes()
    r = RecordIOReader(face_rec[0] / "train.rec")
    last_image = r.offset(IDS * PER_ID)
    (tmp_path / "cut.rec").write_bytes(data[: last_image + 100])
    (tmp_path / "cut.idx").write_bytes((face_rec[0] / "train.idx").read_bytes())
    with pytest.raises(ValueError, match=rf"cut\.rec: truncated record at offset {last_image}\b"):
        RecordIOReader(tmp_path / "cut.rec").read(IDS * PER_ID)


def test_bad_record_is_skipped_counted_and_named_by_key_in_a_warning(tmp_path, face_rec):
    data = bytearray((face_rec[0] / "train.rec").read_bytes())
    r = RecordIOReader(face_rec[0] / "train.rec")
    start, length = r.offset(2) + 8, len(r.read(2))
    assert _parts(face_rec[0] / "train.rec")[2] == (0, length)  # key 2 is one part: its payload is contiguous
    data[start + length // 2 : start + length] = bytes(length - length // 2)  # the JPEG loses its second half
    for name in ("train.idx", "property"):
        (tmp_path / name).write_bytes((face_rec[0] / name).read_bytes())
    (tmp_path / "train.rec").write_bytes(bytes(data))
    ds = RecordIODataset(tmp_path, size=SIZE)
    with pytest.warns(UserWarning, match=r"skipping bad record key 2 in .*train\.rec: truncated JPEG") as caught:
        items = [ds[i] for i in range(len(ds))]
    assert len(caught) == 1 and ds.bad_keys == {2}
    assert torch.equal(items[1][0], items[2][0]) and items[1][1] == items[2][1]  # key 3 stands in for key 2
    with pytest.raises(ValueError, match=r"bad record key 2 in .*train\.rec: truncated JPEG"):
        RecordIODataset(tmp_path, size=SIZE, bad="raise")[1]


@pytest.mark.slow
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_dataset_through_dataloader_with_two_workers_matches_zero_workers(face_rec, start):
    ds = RecordIODataset(face_rec[0], size=SIZE)
    ds[0]  # the parent opens the file first: workers must reopen their own
    serial = list(DataLoader(ds, batch_size=4, num_workers=0))
    parallel = list(DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=start))
    assert len(serial) == len(parallel) == 3
    for (xs, ys), (xp, yp) in zip(serial, parallel):
        assert torch.equal(xs, xp) and torch.equal(ys, yp)
    assert torch.cat([y for _, y in serial]).tolist() == [i // PER_ID for i in range(IDS * PER_ID)]


def test_reader_pickles_without_its_file_and_reopens_after_a_pid_change(face_rec):
    r = RecordIOReader(face_rec[0] / "train.rec")
    first = r.read(3)
    clone = pickle.loads(pickle.dumps(r))
    assert clone._file is None and clone.read(3) == first
    old = r._file
    r._pid = -1  # as in a forked child
    assert r.read(3) == first and r._file is not old and old.closed


def test_reader_without_idx_scans_records_in_file_order(tmp_path):
    with RecordIOWriter(tmp_path / "n.rec", tmp_path / "elsewhere.idx") as w:
        for key, payload in [(7, b"a"), (3, MAGIC_BYTES + b"b"), (9, b"c" * 9)]:
            w.write(key, payload)
    r = RecordIOReader(tmp_path / "n.rec")
    assert r.keys == [0, 1, 2] and [r.read(k) for k in r.keys] == [b"a", MAGIC_BYTES + b"b", b"c" * 9]


@pytest.mark.parametrize(
    "text, message",
    [("0\t0\n1 oops\n", r"m\.idx:2: expected"), ("0\t0\n1\t0\t9\n", r"m\.idx:2: expected"),
     ("0\t0\n1\t-8\n", r"m\.idx:2: expected"), ("0\t0\n0\t8\n", r"m\.idx: key 0 appears twice")],
    ids=["text", "three_fields", "negative_offset", "duplicate_key"],
)  # fmt: skip
def test_malformed_idx_raises_naming_the_file_and_line(tmp_path, text, message):
    with RecordIOWriter(tmp_path / "m.rec") as w:
        w.write(0, b"a")
    (tmp_path / "m.idx").write_text(text)
    with pytest.raises(ValueError, match=message):
        RecordIOReader(tmp_path / "m.rec")


def test_writer_rejects_duplicate_keys(tmp_path):
    with RecordIOWriter(tmp_path / "d.rec") as w:
        w.write(1, b"a")
        with pytest.raises(ValueError, match="key 1 written twice"):
            w.write(1, b"b")


def test_dataset_writer_requires_labels_grouped_by_identity(tmp_path, jpegs):
    with pytest.raises(ValueError, match="non-decreasing"):
        write_recordio_dataset(tmp_path, [(jpegs[0][0], 1), (jpegs[1][0], 0)])
