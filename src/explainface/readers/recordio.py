"""insightface RecordIO (`train.rec` + `train.idx` + `property`) in pure Python, no mxnet (docs/method.md §4.1, §12).

The container is dmlc-core's RecordIO (`include/dmlc/recordio.h`, `src/recordio.cc`): each part is a uint32
magic 0xCED7230A, a uint32 word holding the length (low 29 bits) and a continuation flag (high 3 bits: 0 whole
record, 1 first, 2 middle, 3 last part), the bytes, and zero padding to 4 bytes. When the magic number occurs
in a record at a 4-byte-aligned position, the writer cuts the record there and drops those 4 bytes; the reader
puts the magic back between parts. So the magic only ever appears aligned in the file at part starts.

A record's payload is mxnet's image-record header `<IfQQ` (flag, label, id, id2), then `flag` float32 labels
when flag > 0 (the label is then that array), then the encoded image. The `.idx` file holds `key\\toffset`
lines; `property` holds `num_classes,height,width`. insightface's convention: when record 0 has flag >= 2 and
no image, it is a meta record whose labels `[a, b)` are the keys of the identity records; images are keys
1..a-1, and identity record k holds the image-key range of one identity in its labels.
"""

from __future__ import annotations

import math
import operator
import os
import struct
import threading
import warnings
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from explainface.errors import InputError
from explainface.inputs import to_tensor
from explainface.readers.folders import BadItems, BadPolicy
from explainface.readers.images import decode_image_rgb, resize_image

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_BITS = 29
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
#: dmlc-core refuses records of 2^29 bytes or more (the length field has 29 bits).
MAX_RECORD_BYTES = _LENGTH_MASK
_FLAG_WHOLE, _FLAG_FIRST, _FLAG_MIDDLE, _FLAG_LAST = 0, 1, 2, 3
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24
#: Keys and identity ranges are stored as float32 labels in the meta records: exact only below 2^24.
MAX_EXACT_FLOAT32_INT = 1 << 24
_HAS_PREAD = hasattr(os, "pread")
_INT64_MAX = (1 << 63) - 1


class IRHeader(NamedTuple):
    """mxnet's image-record header: `label` is a float, or a float32 array of `flag` labels when flag > 0."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def pack_header(header: IRHeader, image: bytes = b"") -> bytes:
    """Payload of an image record, as mxnet's `mxnet.recordio.pack`: header, extra labels, image bytes.

    A scalar label is stored in the header (flag 0); a sequence is stored after it, flag = its length.
    """
    if np.ndim(header.label) == 0:
        head = struct.pack(IR_FORMAT, 0, float(header.label), header.id, header.id2)
        return head + bytes(image)
    labels = np.asarray(header.label, dtype="<f4").ravel()
    if labels.size == 0:
        raise ValueError("a label array needs at least one value (flag = its length)")
    return struct.pack(IR_FORMAT, labels.size, 0.0, header.id, header.id2) + labels.tobytes() + bytes(image)


def unpack_header(record: bytes) -> tuple[IRHeader, bytes]:
    """Split a record payload into its header (label array when flag > 0) and the encoded image bytes."""
    if len(record) < IR_SIZE:
        raise ValueError(f"record of {len(record)} bytes is shorter than the {IR_SIZE}-byte image-record header")
    flag, label, id_, id2 = struct.unpack_from(IR_FORMAT, record)
    if flag == 0:
        return IRHeader(0, label, id_, id2), record[IR_SIZE:]
    end = IR_SIZE + 4 * flag
    if len(record) < end:
        raise ValueError(f"record header says {flag} labels but the record has only {len(record)} bytes")
    labels = np.frombuffer(record, dtype="<f4", count=flag, offset=IR_SIZE).astype(np.float32)
    return IRHeader(flag, labels, id_, id2), record[end:]


def _split_at_magic(payload: bytes) -> list[bytes]:
    """The pieces between 4-byte-aligned occurrences of the magic number (dmlc `RecordIOWriter::WriteRecord`)."""
    pieces, start, pos = [], 0, payload.find(_MAGIC_BYTES)
    while pos >= 0:
        if pos % 4 == 0:
            pieces.append(payload[start:pos])
            start = pos + 4
            pos = payload.find(_MAGIC_BYTES, start)
        else:
            pos = payload.find(_MAGIC_BYTES, pos + 1)
    pieces.append(payload[start:])
    return pieces


def encode_record(payload: bytes) -> bytes:
    """The bytes of one logical record on disk: one part, or several when the payload holds the magic number."""
    return _encode(payload)[0]


def _encode(payload: bytes) -> tuple[bytes, int]:
    """(encoded record, number of magic numbers cut out)."""
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"RecordIO records must be smaller than 2^29 bytes, got {len(payload)}")
    pieces = _split_at_magic(bytes(payload))
    last = len(pieces) - 1
    out = []
    for n, piece in enumerate(pieces):
        flag = _FLAG_WHOLE if last == 0 else _FLAG_FIRST if n == 0 else _FLAG_LAST if n == last else _FLAG_MIDDLE
        out += [struct.pack("<II", MAGIC, (flag << _LENGTH_BITS) | len(piece)), piece]
    out.append(b"\x00" * (-len(payload) % 4))  # inner pieces have lengths divisible by 4: only the end needs padding
    return b"".join(out), last


class RecordIOWriter:
    """Write a `.rec` file and its `.idx` (`key\\toffset` lines), as mxnet's `MXIndexedRecordIO(..., "w")`.

    `splits` counts the magic numbers cut out of payloads (dmlc's `except_counter`).
    """

    def __init__(self, path_rec: str | os.PathLike, path_idx: str | os.PathLike | None = None) -> None:
        self.path_rec = Path(path_rec)
        self.path_idx = self.path_rec.with_suffix(".idx") if path_idx is None else Path(path_idx)
        self._rec = open(self.path_rec, "wb")
        self._idx = open(self.path_idx, "w", encoding="ascii", newline="\n")
        self._pos = 0
        self._keys: set[int] = set()
        self.splits = 0

    def write(self, key: int, payload: bytes) -> int:
        """Append one record under integer `key`; returns its offset in the `.rec` file."""
        key = int(key)
        if key in self._keys:
            raise ValueError(f"{self.path_idx}: key {key} written twice")
        data, splits = _encode(payload)
        self.splits += splits
        offset = self._pos
        self._rec.write(data)
        self._idx.write(f"{key}\t{offset}\n")
        self._pos += len(data)
        self._keys.add(key)
        return offset

    def close(self) -> None:
        self._rec.close()
        self._idx.close()

    def __enter__(self) -> RecordIOWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordIOReader:
    """Random access to the logical records of a `.rec` file by the keys of its `.idx` (split parts reassembled).

    Without an `.idx` (`path_idx=None` and no sibling `.idx`), the file is scanned once and records get keys
    0, 1, ... in file order. The file is opened lazily and again in every process (DataLoader workers after
    fork or spawn), never shared; reads use `os.pread`, so threads may share a reader. The index lives in numpy
    arrays, not a dict: millions of keys cost 16 bytes each, and forked workers do not copy them by touching
    reference counts.
    """

    def __init__(self, path_rec: str | os.PathLike, path_idx: str | os.PathLike | None = None) -> None:
        self.path_rec = Path(path_rec)
        if not self.path_rec.is_file():
            raise FileNotFoundError(f"RecordIO file not found: {self.path_rec}")
        if path_idx is None and self.path_rec.with_suffix(".idx").is_file():
            path_idx = self.path_rec.with_suffix(".idx")
        self.path_idx = None if path_idx is None else Path(path_idx)
        self._file = None
        self._pid = None
        self._lock = threading.Lock()
        if self.path_idx is None:
            offsets = np.array(scan_offsets(self.path_rec), dtype=np.int64)
            self.key_array = np.arange(len(offsets), dtype=np.int64)
        else:
            self.key_array, offsets = _read_idx(self.path_idx)
        order = np.argsort(self.key_array, kind="stable")
        self._sorted_keys, self._sorted_offsets = self.key_array[order], offsets[order]
        n = len(order)
        contiguous = n > 0 and int(self._sorted_keys[-1]) - int(self._sorted_keys[0]) == n - 1  # keys are unique
        self._first_key = int(self._sorted_keys[0]) if contiguous else None  # insightface: 0..N, no search needed

    @property
    def keys(self) -> list[int]:
        """Record keys in `.idx` order (`key_array` holds them as int64 without building a list)."""
        return self.key_array.tolist()

    def __len__(self) -> int:
        return len(self.key_array)

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not None

    def _find(self, key: object) -> int | None:
        try:
            key = operator.index(key)
        except TypeError:
            return None
        if self._first_key is not None:
            i = key - self._first_key
            return i if 0 <= i < len(self._sorted_keys) else None
        i = int(np.searchsorted(self._sorted_keys, key))
        return i if i < len(self._sorted_keys) and self._sorted_keys[i] == key else None

    def offset(self, key: int) -> int:
        """Byte offset of the record stored under `key`; `KeyError` naming the index file when there is none."""
        i = self._find(key)
        if i is None:
            raise KeyError(f"key {key} not in {self.path_idx or self.path_rec}")
        return int(self._sorted_offsets[i])

    def read(self, key: int) -> bytes:
        """The logical record stored under `key`."""
        return self.read_at(self.offset(key))

    def read_at(self, offset: int) -> bytes:
        """The logical record starting at byte `offset`: parts joined with the magic numbers the writer cut out."""
        pieces, pos = [], offset
        while True:
            head = self._pread(8, pos)
            if len(head) < 8:
                raise ValueError(f"{self.path_rec}: truncated record at offset {pos} (file ends in its header)")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise ValueError(
                    f"{self.path_rec}: bad magic number 0x{magic:08X} at offset {pos} (expected 0x{MAGIC:08X}); "
                    "the .rec file or its .idx is corrupt"
                )
            flag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
            if flag not in ((_FLAG_WHOLE, _FLAG_FIRST) if pos == offset else (_FLAG_MIDDLE, _FLAG_LAST)):
                raise ValueError(f"{self.path_rec}: unexpected continuation flag {flag} at offset {pos}")
            if length > 1 << 20:  # a corrupt length must not allocate up to 512 MB before the read comes back short
                left = max(0, os.fstat(self._handle().fileno()).st_size - pos - 8)
                if length > left:
                    raise ValueError(
                        f"{self.path_rec}: truncated record at offset {pos}: {length} bytes announced, {left} left"
                    )
            body = self._pread(length, pos + 8)
            if len(body) < length:
                raise ValueError(
                    f"{self.path_rec}: truncated record at offset {pos}: {length} bytes announced, {len(body)} left"
                )
            pieces.append(body)
            pos += 8 + length + (-length % 4)
            if flag in (_FLAG_WHOLE, _FLAG_LAST):
                return _MAGIC_BYTES.join(pieces)

    def _pread(self, n: int, offset: int) -> bytes:
        f = self._handle()
        if not _HAS_PREAD:
            with self._lock:
                f.seek(offset)
                return f.read(n)
        chunks, fd = [], f.fileno()
        while n > 0:
            chunk = os.pread(fd, n, offset)
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def _handle(self):
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            if self._file is not None:
                self._file.close()  # our copy of the parent's descriptor; the parent's stays open
            self._file, self._pid = open(self.path_rec, "rb", buffering=0), pid
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._pid = None

    def __enter__(self) -> RecordIOReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_file=None, _pid=None, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _read_idx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(keys, offsets) as int64 arrays in file order, from `key<TAB>offset` lines; errors name file and line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file: handled below
            table = np.loadtxt(path, dtype=np.int64, ndmin=2, comments=None)
    except ValueError:
        table = None  # malformed: the slow parser below finds and names the line
    if table is None or table.shape[1:] != (2,):
        table = np.array(_parse_idx_lines(path), dtype=np.int64).reshape(-1, 2)
    keys, offsets = table[:, 0].copy(), table[:, 1].copy()
    if (offsets < 0).any():
        _parse_idx_lines(path)  # raises naming the line
    sorted_keys = np.sort(keys)
    duplicated = sorted_keys[1:][sorted_keys[1:] == sorted_keys[:-1]]
    if duplicated.size:
        first, second = (int(e) + 1 for e in np.flatnonzero(keys == duplicated[0])[:2])
        raise ValueError(f"{path}: key {duplicated[0]} appears twice (entries {first} and {second})")
    return keys, offsets


def _parse_idx_lines(path: Path) -> list[tuple[int, int]]:
    rows = []
    with open(path, encoding="ascii", errors="replace") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                key, offset = int(fields[0]), int(fields[1])
                if len(fields) != 2 or not (0 <= offset <= _INT64_MAX and -_INT64_MAX <= key <= _INT64_MAX):
                    raise ValueError
            except (ValueError, IndexError):
                shown = repr(line.rstrip())
                shown = shown if len(shown) <= 120 else shown[:120] + "..."
                raise ValueError(f"{path}:{n}: expected 'key<TAB>offset' (integers of 64 bits at most, the offset "
                                 f">= 0), got {shown}") from None  # fmt: skip
            rows.append((key, offset))
    return rows


def scan_offsets(path_rec: str | os.PathLike) -> list[int]:
    """Offsets of the logical records of a `.rec` file in file order (to read a file that has no `.idx`)."""
    path_rec = Path(path_rec)
    offsets, pos, start, flag = [], 0, 0, _FLAG_WHOLE
    with open(path_rec, "rb") as f:
        while head := f.read(8):
            if len(head) < 8:
                raise ValueError(f"{path_rec}: truncated record header at offset {pos}")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise ValueError(f"{path_rec}: bad magic number 0x{magic:08X} at offset {pos}")
            inside = flag in (_FLAG_FIRST, _FLAG_MIDDLE)  # the previous part opened a record that goes on
            flag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
            if flag not in ((_FLAG_MIDDLE, _FLAG_LAST) if inside else (_FLAG_WHOLE, _FLAG_FIRST)):
                raise ValueError(f"{path_rec}: unexpected continuation flag {flag} at offset {pos}")
            if flag in (_FLAG_WHOLE, _FLAG_FIRST):
                start = pos
            pos += 8 + length + (-length % 4)
            f.seek(pos)
            if flag in (_FLAG_WHOLE, _FLAG_LAST):
                offsets.append(start)
    if pos > path_rec.stat().st_size or flag in (_FLAG_FIRST, _FLAG_MIDDLE):
        raise ValueError(f"{path_rec}: truncated record at offset {start}")
    return offsets


def write_property(directory: str | os.PathLike, num_classes: int, height: int, width: int) -> Path:
    """Write insightface's `property` file, `num_classes,height,width`."""
    path = Path(directory) / "property"
    path.write_text(f"{int(num_classes)},{int(height)},{int(width)}\n")
    return path


def read_property(directory: str | os.PathLike) -> tuple[int, int, int] | None:
    """`(num_classes, height, width)` from `directory/property`, or None when there is no such file."""
    path = Path(directory) / "property"
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig").strip()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: expected 'num_classes,height,width', not UTF-8 text ({e.reason})") from None
    try:
        num_classes, height, width = (int(v) for v in text.split(","))
        if min(num_classes, height, width) < 1 or max(num_classes, height, width) > _INT64_MAX:
            raise ValueError
    except ValueError:
        shown = repr(text) if len(text) <= 80 else repr(text[:80]) + "..."
        raise ValueError(f"{path}: expected 'num_classes,height,width' (positive integers), got {shown}") from None
    return num_classes, height, width


def write_recordio_dataset(
    out_dir: str | os.PathLike, items: Iterable[tuple[bytes, int]], height: int = 112, width: int = 112
) -> dict:
    """Write encoded images with labels as insightface's `train.rec`/`train.idx`/`property` in `out_dir`.

    Layout: meta record 0 (labels `[N+1, N+1+C)`), images as keys 1..N (label in the header, id = key), then one
    identity record per class 0..C-1 whose labels are its image-key range. Labels must be non-decreasing (items
    grouped by identity, as `scan_identity_folders` orders them). Returns counts and paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec, idx = out / "train.rec", out / "train.idx"
    ranges: list[list[int]] = []  # per label: [first image key, end key)
    with RecordIOWriter(rec, idx) as w:
        w.write(0, pack_header(IRHeader(2, np.zeros(2, np.float32), 0, 0)))  # placeholder, same size as the final
        key = 0
        for key, (image, label) in enumerate(items, 1):
            label = int(label)
            if label < 0 or (ranges and label < len(ranges) - 1):
                raise ValueError(f"labels must be >= 0 and non-decreasing (grouped by identity); got {label} at {key}")
            while len(ranges) <= label:
                ranges.append([key, key])
            ranges[label][1] = key + 1
            w.write(key, pack_header(IRHeader(0, float(label), key, 0), image))
        images, first_identity = key, key + 1
        if first_identity + len(ranges) > MAX_EXACT_FLOAT32_INT:
            raise ValueError(f"{images} images + {len(ranges)} identities: keys beyond 2^24 are inexact in float32")
        for c, (a, b) in enumerate(ranges):
            w.write(first_identity + c, pack_header(IRHeader(2, np.array([a, b], np.float32), first_identity + c, 0)))
        splits = w.splits
    meta = pack_header(IRHeader(2, np.array([first_identity, first_identity + len(ranges)], np.float32), 0, 0))
    with open(rec, "r+b") as f:  # the meta payload cannot hold the magic (a negative float32): same size, in place
        f.seek(8)
        f.write(meta)
    write_property(out, len(ranges), height, width)
    return {"rec": rec, "idx": idx, "property": out / "property", "images": images, "classes": len(ranges),
            "splits": splits}  # fmt: skip


class RecordIODataset(Dataset):
    """`(image, label)` items of an insightface RecordIO set: image float32 [3, size, size], RGB, mean/std 0.5.

    `dir_or_rec` is a folder with `train.rec`, `train.idx` and optionally `property`, or a `.rec` path (its `.idx`
    and `property` beside it). Images are the keys 1..a-1 when record 0 is a meta record (flag >= 2, no image
    bytes), else every key of the index. Bad records follow `bad` as in `IdentityFolderDataset`.
    """

    def __init__(self, dir_or_rec: str | os.PathLike, size: int = 112, bad: BadPolicy = "skip") -> None:
        path = Path(dir_or_rec)
        rec = path / "train.rec" if path.is_dir() else path
        if not rec.is_file():
            raise FileNotFoundError(f"RecordIO file not found: {rec}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.reader = RecordIOReader(rec)
        self.property = read_property(rec.parent)
        self.identity_keys: range | None = None
        self.keys = self._image_keys()
        self._num_classes: int | None = None
        self._bad = BadItems(bad, "record key", where=str(rec))

    def _image_keys(self) -> Sequence[int]:
        keys = self.reader.key_array
        if 0 in self.reader:
            try:
                header, image = unpack_header(self.reader.read(0))
            except ValueError as e:
                raise InputError(f"{self.reader.path_rec}: record 0: {e}") from None
            if header.flag >= 2 and not image:
                first, end = (float(v) for v in header.label[:2])
                n = len(keys)
                if not all(math.isfinite(v) and v == int(v) for v in (first, end)) or not 1 <= first <= end:
                    raise InputError(f"{self.reader.path_rec}: meta record 0 names image keys 1..{first:g} - 1 "
                                     f"and identity keys {first:g}..{end:g} - 1: not a valid key range")  # fmt: skip
                first, end = int(first), int(end)
                if end - first > n:
                    raise InputError(f"{self.reader.path_rec}: meta record 0 names {end - first} identity records "
                                     f"(keys {first}..{end - 1}), but the index holds only {n} keys")  # fmt: skip
                self.identity_keys = range(first, end)
                present = np.sort(keys[(keys >= 1) & (keys < first)])  # never allocates by the meta record's numbers
                if len(present) == first - 1:
                    keys = range(1, first)
                else:
                    warnings.warn(
                        f"{self.reader.path_idx or self.reader.path_rec}: {first - 1 - len(present)} of the "
                        f"{first - 1} image keys named by meta record 0 are missing from the index; they are left out",
                        UserWarning,
                        stacklevel=3,
                    )
                    keys = present
        if len(keys) == 0:
            raise InputError(f"{self.reader.path_rec}: no image records")
        return keys

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_classes(self) -> int:
        """From `property`, else the meta record's identity count, else max label + 1 (reads every record)."""
        if self._num_classes is None:
            if self.property is not None:
                self._num_classes = self.property[0]
            elif self.identity_keys is not None:
                self._num_classes = len(self.identity_keys)
            else:
                labels = []
                for k in self.keys:
                    try:
                        labels.append(_label(unpack_header(self.reader.read(k))[0]))
                    except ValueError as e:
                        raise InputError(f"{self.reader.path_rec}: record key {k}: {e}") from None
                self._num_classes = 1 + max(labels)
        return self._num_classes

    @property
    def bad_keys(self) -> frozenset[int]:
        """Keys of records found unusable in this process (each DataLoader worker has its own)."""
        return frozenset(self._bad.seen)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        return self._bad.first_good(i % n, n, self._key, self._load)

    def _key(self, j: int) -> int:
        return int(self.keys[j])

    def _load(self, j: int) -> tuple[torch.Tensor, int]:
        key = self._key(j)
        header, image = unpack_header(self.reader.read(key))
        label = _label(header)
        classes = self.property[0] if self.property else len(self.identity_keys) if self.identity_keys else None
        if classes is not None and label >= classes:  # the loss would index past its class weights
            source = "property" if self.property else "meta record 0"
            raise ValueError(f"label {label} is outside the {classes} classes that {source} declares")
        rgb = decode_image_rgb(image, str(key))
        return to_tensor(np.ascontiguousarray(resize_image(rgb, self.size))), label


def _label(header: IRHeader) -> int:
    """The class of an image record: its label, or the first of its labels (insightface); a `ValueError` unless it
    is a whole number >= 0."""
    label = float(header.label if header.flag == 0 else header.label[0])
    if not (math.isfinite(label) and 0 <= label < MAX_EXACT_FLOAT32_INT and label == int(label)):
        raise ValueError(f"label {label:g} is not a class number (a whole number in 0..2^24 - 1)")
    return int(label)
