"""Image files: reading and decoding to RGB (truncated JPEGs detected), resizing, and the JPEG settings we write.

One place for what every reader and writer of images shares (identity folders, RecordIO, crops, the synthetic
export): decoding goes through `np.fromfile` + `cv2.imdecode`, so non-ASCII paths work everywhere.

Large images: `max_side` (`load_image_rgb(path, max_side=...)`, `decode_image_rgb_reduced`, which also returns
the factor) decodes reduced by 2, 4 or 8, keeping the long side >= `max_side`. A JPEG is then decoded small by
libjpeg (a 10000 x 10000 JPEG reduced by 8 peaks at ~50 MB instead of ~610 MB); other formats are decoded whole
and averaged down, which spares only what comes after. `points_to_full` / `points_to_reduced` map coordinates.
A header claiming more than `MAX_IMAGE_PIXELS` is refused before decoding; OpenCV's own refusals become
`ValueError`s naming the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

#: Image suffixes (any case) the readers take as face images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp")
#: The part label map the synthetic export writes beside each image (`<stem>.parts.png`): never a face image.
PARTS_SUFFIX = ".parts.png"
JPEG_QUALITY = 95
#: JPEG encoder settings: quality 95 without chroma subsampling (4:4:4), because 4:2:0 halves the colour
#: resolution, which at 64-112 px smears eyes and lips (mean abs error 4.5 vs 2.7 grey levels at 64 px).
JPEG_PARAMS = (
    cv2.IMWRITE_JPEG_QUALITY,
    JPEG_QUALITY,
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
)
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"


def is_label_map(path: str | os.PathLike) -> bool:
    """Whether `path` names a part label map (`*.parts.png`, any case) rather than a face image."""
    return os.fspath(path).lower().endswith(PARTS_SUFFIX)


def is_image_file_name(path: str | os.PathLike) -> bool:
    """Whether `path`'s name is that of a face image: an `IMAGE_EXTENSIONS` suffix and not a label map."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS and not is_label_map(path)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """The face images under `folder`, recursive, sorted by path; part label maps (`*.parts.png`) excluded.

    Every entry with an image's name that is not a folder is listed, regular file or not: a FIFO or a broken link
    named ``x.jpg`` is then skipped and counted, with its reason, by whoever reads it (`load_image_rgb` refuses it
    before opening), instead of silently missing from the counts. `ValueError` naming the folder when it is not
    one; an empty list when it holds no images.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if is_image_file_name(p) and not p.is_dir())


def _ends_with_eoi(data: bytes | np.ndarray) -> bool:
    """Whether the data ends with FFD9, trailing zero bytes aside; reads the end only, copies nothing big."""
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    end = len(buf)
    while end > 0:
        tail = buf[max(0, end - 65536) : end]
        nonzero = np.flatnonzero(tail)
        if nonzero.size:
            last = end - len(tail) + int(nonzero[-1])
            return last >= 1 and buf[last] == 0xD9 and buf[last - 1] == 0xFF
        end -= len(tail)
    return False


def jpeg_is_complete(data: bytes | np.ndarray) -> bool:
    """Whether JPEG bytes reach their end-of-image marker (FFD9), i.e. the file is not truncated.

    Fast path: the data ends with FFD9, allowing trailing zero padding. Otherwise the markers are walked, so a
    complete image followed by a trailer (some cameras append data) still counts; an EOI inside an embedded
    thumbnail does not, because segments are skipped by their lengths.
    """
    if _ends_with_eoi(data):
        return True
    if isinstance(data, np.ndarray):
        data = data.tobytes()  # the marker walk needs bytes.find
    n, pos = len(data), 2
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == 0xD9:
            return True
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker that is not FF00/RSTn
                while True:
                    pos = data.find(b"\xff", pos)
                    if pos < 0 or pos + 1 >= n:
                        return False
                    nxt = data[pos + 1]
                    if nxt == 0xFF:
                        pos += 1
                    elif nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                        pos += 2
                    else:
                        break
    return False


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic coded).
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: The factors OpenCV (libjpeg's DCT scaling) decodes a JPEG reduced by, and their `imdecode` flags.
REDUCTIONS = (1, 2, 4, 8)
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def jpeg_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """`(width, height)` from a JPEG's start-of-frame header, or None when `data` is no JPEG or its header cannot be
    found (corrupt, or a height defined later by a DNL marker). Reads the markers before the first scan only.

    The size is the stored one: an EXIF orientation of 90 degrees swaps width and height in the decoded image.
    """
    buf = memoryview(np.ascontiguousarray(data, np.uint8).reshape(-1) if isinstance(data, np.ndarray) else data)
    n, pos = len(buf), 2
    if buf[:2] != _JPEG_SOI:
        return None
    while pos + 4 <= n:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
        elif marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        else:
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            if marker in _JPEG_SOF:
                if length < 7 or pos + 9 > n:
                    return None
                height = int.from_bytes(buf[pos + 5 : pos + 7], "big")
                width = int.from_bytes(buf[pos + 7 : pos + 9], "big")
                return (width, height) if width and height else None
            if length < 2:
                return None
            pos += 2 + length
    return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The most pixels an image may decode to (after any reduction): 2^28, 268 megapixels, e.g. 16384 x 16384, 805 MB
#: as RGB. A corrupt header (or a decompression bomb) claiming more is refused before anything is allocated;
#: OpenCV's own limit (2^30 pixels, `OPENCV_IO_MAX_IMAGE_PIXELS`) lets one JPEG take 6.4 GB (BGR + RGB).
MAX_IMAGE_PIXELS = 1 << 28


def image_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """`(width, height)` read from the header of a JPEG (`jpeg_size`) or a PNG (IHDR), without decoding; None for
    other formats and unreadable headers."""
    buf = memoryview(np.ascontiguousarray(data, np.uint8).reshape(-1) if isinstance(data, np.ndarray) else data)
    if buf[:8] == _PNG_SIGNATURE:
        if len(buf) < 24 or buf[12:16] != b"IHDR":
            return None
        width, height = int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")
        return (width, height) if width and height else None
    return jpeg_size(buf)


def reduction_for(width: int, height: int, max_side: int | None, jpeg: bool = True) -> int:
    """The largest factor of `REDUCTIONS` (1, 2, 4, 8) that keeps the long side of a `width` x `height` image at
    `max_side` pixels or more (1 when `max_side` is None or the image is not larger). A JPEG reduced by k has
    ceil(side / k) pixels, any other image floor(side / k) (`decode_image_rgb_reduced`)."""
    if max_side is None:
        return 1
    long_side = max(int(width), int(height))
    return max(k for k in REDUCTIONS if k == 1 or (-(-long_side // k) if jpeg else long_side // k) >= max_side)


def _check_max_side(max_side: int | None) -> None:
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer))
                                 or max_side < 1):  # fmt: skip
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")


def decode_image_rgb_reduced(
    data: bytes | np.ndarray, name: str = "<bytes>", max_side: int | None = None
) -> tuple[np.ndarray, int]:
    """`decode_image_rgb` at a reduced size, and the factor `k` (1, 2, 4 or 8) it was reduced by: the largest that
    keeps the image's long side >= `max_side` (`reduction_for`); `max_side=None` decodes at full size (k = 1).

    A point `p` of the reduced image is `(p + 0.5) * k - 0.5` in the full image (pixel centres at integers), in
    every format: a JPEG is decoded reduced by libjpeg's DCT scaling (`cv2.IMREAD_REDUCED_COLOR_k`, ceil(w / k)
    pixels, each one a k x k block), so only the reduced image is ever allocated; any other format (and a JPEG
    whose frame header cannot be read) is decoded at full size and then averaged over k x k blocks (floor(w / k)
    pixels, the last < k rows and columns dropped), which saves the memory of everything downstream but not of the
    decoding itself.
    """
    _check_max_side(max_side)
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise ValueError(f"{name}: empty file")
    is_jpeg = buf[:2].tobytes() == _JPEG_SOI
    if is_jpeg and not jpeg_is_complete(buf):
        raise ValueError(f"{name}: truncated JPEG (no end-of-image marker)")
    size = image_size(buf)
    k = reduction_for(*size, max_side) if size is not None and is_jpeg else 1
    if size is not None and -(-size[0] // k) * -(-size[1] // k) > MAX_IMAGE_PIXELS:
        w, h = size
        raise ValueError(f"{name}: the header says {w} x {h} pixels, more than the {MAX_IMAGE_PIXELS} an image may "
                         "decode to (a corrupt header, or an image too large to decode)")  # fmt: skip
    try:
        bgr = cv2.imdecode(buf, _REDUCED_FLAGS[k])
    except cv2.error as e:  # OpenCV refuses some headers by an assertion (e.g. more than 2^30 pixels)
        message = " ".join(str(e).split())
        raise ValueError(f"{name}: not a decodable image ({message})") from None
    if bgr is None or bgr.size == 0:
        raise ValueError(f"{name}: not a decodable image (corrupt, truncated or unsupported format)")
    if max_side is not None and k == 1:
        k = reduction_for(bgr.shape[1], bgr.shape[0], max_side, jpeg=False)
        if k > 1:
            h, w = (bgr.shape[0] // k) * k, (bgr.shape[1] // k) * k
            bgr = cv2.resize(bgr[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), k


def points_to_full(points: np.ndarray, k: int) -> np.ndarray:
    """Points `[..., 2]` (x, y; pixel centres at integers) of an image reduced by `k` -> the full image:
    `(p + 0.5) * k - 0.5`. Box edges and crop squares (`(x0, y0, side)`, edges between pixels) scale by `k` alone."""
    return (np.asarray(points, np.float64) + 0.5) * k - 0.5


def points_to_reduced(points: np.ndarray, k: int) -> np.ndarray:
    """The inverse of `points_to_full`: full-image points (e.g. a `.pts` file's) in the image reduced by `k`."""
    return (np.asarray(points, np.float64) + 0.5) / k - 0.5


def decode_image_rgb(data: bytes | np.ndarray, name: str = "<bytes>", max_side: int | None = None) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, BMP, PGM/PPM, WebP) to RGB uint8 [H, W, 3]; greyscale becomes 3 channels.

    Raises `ValueError` naming `name` and the problem for empty, truncated or undecodable data. Older OpenCV
    builds decode a truncated JPEG with only a warning, hence the explicit end-of-image check. `max_side` decodes
    a large image reduced by 2, 4 or 8 (`decode_image_rgb_reduced`, which also returns the factor).
    """
    return decode_image_rgb_reduced(data, name, max_side)[0]


def read_image_rgb(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray | None:
    """Read an image file as RGB uint8 [H, W, 3], or None when it is missing, unreadable, truncated or not an image.

    Reads through `np.fromfile` + `cv2.imdecode`, so non-ASCII paths work on every platform. `max_side`: as in
    `decode_image_rgb`.
    """
    _check_max_side(max_side)
    try:
        return load_image_rgb(path, max_side)
    except (OSError, ValueError):
        return None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to `size` x `size`: INTER_AREA when shrinking (no aliasing), INTER_LINEAR when growing."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def read_image_bytes(path: str | os.PathLike) -> np.ndarray:
    """The bytes of an image file (uint8), refused with a `ValueError` naming it when it is not a regular file."""
    from explainface.files import regular_file

    regular_file(path, "image file")  # a FIFO named x.jpg would block the read forever
    try:
        return np.fromfile(os.fspath(path), np.uint8)
    except ValueError as e:  # a path numpy cannot open (an embedded NUL byte): the message would not name it
        raise ValueError(f"{os.fspath(path)!r}: cannot open ({e})") from None


def load_image_rgb_reduced(path: str | os.PathLike, max_side: int | None = None) -> tuple[np.ndarray, int]:
    """`load_image_rgb` that also returns the factor the image was reduced by (`decode_image_rgb_reduced`)."""
    return decode_image_rgb_reduced(read_image_bytes(path), str(path), max_side)


def load_image_rgb(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """`read_image_rgb` that raises `OSError`/`ValueError` naming the file and the problem instead of returning None.

    `max_side`: decode a large image reduced by 2, 4 or 8, keeping its long side >= `max_side`
    (`load_image_rgb_reduced` also returns the factor, to map coordinates back to the full image).
    """
    return load_image_rgb_reduced(path, max_side)[0]
