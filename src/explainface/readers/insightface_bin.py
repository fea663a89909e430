"""insightface's verification `.bin` (`pickle.dumps((bins, issame))`, as in their `lfw.bin`, `cfp_fp.bin`, ...) read
as a `PairList` without running any code: a restricted unpickler that refuses every global except the byte
constructors such a file needs. Its images are held in memory (`ImageRef.from_bytes`)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np

from explainface.readers.pairs import ImageRef, PairList, _short


class _GlobalRefused(Exception):
    pass


def _bytes_only(*args: object) -> bytes:
    """Stands in for the three callables through which Python 3 writes byte strings in pickle protocols 0-4:
    `_codecs.encode(text, "latin1")` for bytes in protocol 2, `bytes()` for b"", and `bytearray(...)`.
    Builds bytes from a latin-1 string or bytes and nothing else (not even `bytes(n)`, which allocates n bytes).
    """
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return args[0].encode("latin1")
    raise _GlobalRefused(f"a byte string built from {tuple(type(a).__name__ for a in args)}")


# The only globals admitted, and what stands in for them: byte strings in the shape Python 3 pickles them.
_BYTES_GLOBALS = {
    ("_codecs", "encode"),
    ("builtins", "bytes"),
    ("__builtin__", "bytes"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
}


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Admits only data: bytes, str, numbers, bools, None, lists, tuples, dicts, sets; no function or class.

    Every way a pickle reaches a callable (GLOBAL, STACK_GLOBAL, INST, OBJ's class, the extension registry) goes
    through `find_class`, and the default `persistent_load` refuses persistent ids. `find_class` refuses every
    global except the byte-string constructors of `_BYTES_GLOBALS`, which it swaps for `_bytes_only`.
    """

    def find_class(self, module: str, name: str):
        if (module, name) in _BYTES_GLOBALS:
            return _bytes_only
        raise _GlobalRefused(f"{module}.{name}")


def _unpickle_bin(path: Path) -> object:
    # encoding="bytes": Python 2 pickles store the images as `str`, which must come back as bytes, not text.
    with path.open("rb") as f:
        try:
            return _NoGlobalsUnpickler(f, encoding="bytes").load()
        except _GlobalRefused as e:
            raise ValueError(
                f"{path}: refuses to load globals from a pair .bin (it asks for {e}); a pair .bin may only hold "
                "bytes, lists, tuples, bools and ints, and a global could run code"
            ) from None
        except Exception as e:  # truncated or corrupt: UnpicklingError, EOFError, ValueError, KeyError, ...
            raise ValueError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def read_bin_pairs(path: Path) -> PairList:
    content = _unpickle_bin(path)
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        raise ValueError(f"{path}: expected a pickled 2-tuple (images, issame), got {_describe(content)}")
    bins, issame = content
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        got = f"({_describe(bins)}, {_describe(issame)})"
        raise ValueError(f"{path}: expected (list of images, list of issame), got {got}")
    if len(bins) != 2 * len(issame):
        raise ValueError(f"{path}: {len(issame)} pairs need {2 * len(issame)} images, the file has {len(bins)}")
    images = []
    for i, data in enumerate(bins):
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"{path}: image {i} is {_describe(data)}, expected encoded image bytes")
        images.append(ImageRef.from_bytes(data, f"{path}[{i}]"))
    for i, s in enumerate(issame):
        # bool is an int; plain ints are admitted only as 0/1
        if not isinstance(s, int) or s not in (0, 1):
            if isinstance(s, int):
                got = str(s) if abs(s) < 10**20 else f"an int of {s.bit_length()} bits"
            elif isinstance(s, (str, bytes, bytearray, float)) or s is None:
                got = _short(s[:200] if isinstance(s, (str, bytes, bytearray)) else s)
            else:
                got = _describe(s)
            raise ValueError(f"{path}: issame[{i}] is {got}, expected a bool (or 0/1)")
    n = len(issame)
    pairs = np.arange(n, dtype=np.int64)
    return PairList(images, 2 * pairs, 2 * pairs + 1, np.array(issame, dtype=bool), None, str(path))


def _describe(x: object) -> str:
    return f"{type(x).__name__} of length {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__


def write_bin_pairs(path: str | os.PathLike, images: Sequence[bytes], issame: Sequence[bool]) -> Path:
    """Write an insightface-style pair `.bin`: a pickle of `(images, issame)`, pair i being images 2i and 2i+1."""
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(issame)} pairs need {2 * len(issame)} images, got {len(images)}")
    if not all(isinstance(d, (bytes, bytearray)) for d in images):
        raise TypeError("images must be encoded image bytes")
    path = Path(path)
    with path.open("wb") as f:
        pickle.dump(([bytes(d) for d in images], [bool(s) for s in issame]), f, protocol=4)
    return path
