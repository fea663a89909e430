"""RecordIO random-read throughput: records/s and MB/s, reading alone and reading + decoding, in one process.

    python benchmarks/recordio_speed.py [--images 5000] [--size 112] [--repeats 3] [--workdir DIR]
                                        [--out benchmarks/results/recordio_speed.json]

Writes `images` synthetic faces (JPEG as `export_synthetic` writes them) twice: as insightface RecordIO
(`train.rec`/`train.idx`) and, the reference, as one JPEG file per image in identity folders. Both are then read
in the same shuffled order: the raw encoded bytes (RecordIO `read(key)` vs `open().read()`), and the bytes
decoded to RGB (`unpack_header` + `decode_image_rgb` vs `read_image_rgb`). Each is timed with the page cache
warm (after a pass over everything) and cold for these files (`posix_fadvise(DONTNEED)` on every file first; a
virtual machine's host may still cache). The median of `repeats` runs is reported; OpenCV uses one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from explainface.readers.images import JPEG_PARAMS, decode_image_rgb, read_image_rgb
from explainface.readers.recordio import RecordIOReader, unpack_header, write_recordio_dataset
from explainface.synthetic import SyntheticFaces

ROOT = Path(__file__).resolve().parents[1]
PER_IDENTITY = 100


def make_data(workdir: Path, images: int, size: int) -> tuple[Path, list[Path], list[int]]:
    """Write the same JPEGs as RecordIO and as identity folders; return (rec, image paths, rec keys)."""
    faces = SyntheticFaces(0)
    folder, paths, encoded = workdir / "folders", [], []
    for n in range(images):
        identity, k = divmod(n, PER_IDENTITY)
        bgr = cv2.cvtColor(faces.sample(identity, k, size).image, cv2.COLOR_RGB2BGR)
        data = cv2.imencode(".jpg", bgr, list(JPEG_PARAMS))[1].tobytes()
        path = folder / f"id{identity:05d}" / f"id{identity:05d}_{k + 1:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
        encoded.append((data, identity))
    summary = write_recordio_dataset(workdir / "rec", encoded, size, size)
    return summary["rec"], paths, list(range(1, images + 1))


def drop_cache(paths: list[Path]) -> bool:
    """Ask the kernel to forget the cached pages of these files; False where that is not available."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def timed(run: Callable[[], int], repeats: int, before: Callable[[], object]) -> tuple[float, int]:
    """Median seconds of `run` (which returns the bytes it read) over `repeats`, calling `before` each time."""
    times, nbytes = [], 0
    for _ in range(repeats):
        before()
        t0 = time.perf_counter()
        nbytes = run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), nbytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="where to write the data (default: a temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recordio_speed.json"))
    args = ap.parse_args()
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        t0 = time.perf_counter()
        rec, paths, keys = make_data(workdir, args.images, args.size)
        print(f"wrote {args.images} {args.size}px JPEGs twice in {time.perf_counter() - t0:.1f} s")
        order = np.random.default_rng(0).permutation(args.images).tolist()
        reader = RecordIOReader(rec)
        rec_files = [rec, rec.with_suffix(".idx")]

        def rec_read() -> int:
            return sum(len(reader.read(keys[i])) for i in order)

        def folder_read() -> int:
            total = 0
            for i in order:
                with open(paths[i], "rb") as f:
                    total += len(f.read())
            return total

        def rec_decode() -> int:
            total = 0
            for i in order:
                record = reader.read(keys[i])
                decode_image_rgb(unpack_header(record)[1])
                total += len(record)
            return total

        def folder_decode() -> int:
            total = 0
            for i in order:
                read_image_rgb(paths[i])
                total += paths[i].stat().st_size
            return total

        cases = [
            ("recordio", "read", rec_read, rec_files),
            ("jpeg files", "read", folder_read, paths),
            ("recordio", "read+decode", rec_decode, rec_files),
            ("jpeg files", "read+decode", folder_decode, paths),
        ]
        rows = []
        can_drop = hasattr(os, "posix_fadvise")
        for cache in ("warm", "cold") if can_drop else ("warm",):
            for method, stage, run, files in cases:
                run()  # warm-up: imports, the reader's file handle, the page cache for the warm case
                before = (lambda files=files: drop_cache(files)) if cache == "cold" else (lambda: None)
                seconds, nbytes = timed(run, args.repeats, before)
                rows.append(
                    {
                        "method": method,
                        "stage": stage,
                        "cache": cache,
                        "records_per_s": args.images / seconds,
                        "mb_per_s": nbytes / seconds / 1e6,
                        "seconds": seconds,
                        "bytes": nbytes,
                    }
                )
        reader.close()
        rec_mb = rec.stat().st_size / 1e6
        folder_mb = sum(p.stat().st_size for p in paths) / 1e6

    by = {(r["method"], r["stage"], r["cache"]): r for r in rows}
    print("| cache | stage | recordio rec/s | recordio MB/s | jpeg files rec/s | jpeg files MB/s | recordio / files |")
    print("|---|---|---|---|---|---|---|")
    for cache in dict.fromkeys(r["cache"] for r in rows):
        for stage in ("read", "read+decode"):
            a, b = by[("recordio", stage, cache)], by[("jpeg files", stage, cache)]
            print(
                f"| {cache} | {stage} | {a['records_per_s']:,.0f} | {a['mb_per_s']:.1f} | {b['records_per_s']:,.0f} "
                f"| {b['mb_per_s']:.1f} | {a['records_per_s'] / b['records_per_s']:.2f}x |"
            )
    result = {
        "images": args.images,
        "size": args.size,
        "repeats": args.repeats,
        "order": "random permutation, seed 0",
        "rec_mb": rec_mb,
        "jpeg_files_mb": folder_mb,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "cold_cache": "posix_fadvise DONTNEED per file before each run" if can_drop else "not available",
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
