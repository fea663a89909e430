"""dlib's 68 landmarks of a crop cache, computed once and kept as `<stem>.pts` beside each crop.

Regularisers that place things on the face (Yin et al.'s occluder, `losses/yin.py`) read each training face's
landmarks; the identity-folder dataset takes them from a `.pts` file beside the image (`readers.folders`). A crop
cache made by `explainface crop` has none, so this pass adds them: for every crop whose face was detected
(`crop_index.csv` status "face"), dlib's 68-point predictor runs on the *source* image inside the detector's box
(the predictor was trained on dlib HOG boxes at source resolution), and the points are moved into the crop's
pixels (`faces.landmarks.crop_landmarks`; in a chip cache through each chip's affine, `align.transform_points`). Centre
crops (no face found) get no file: their faces fall back to the mean face. A `.pts` newer than its crop is kept
(re-running is cheap); unreadable sources are counted and named.
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from explainface.faces.align import transform_points
from explainface.faces.crop import chip_transform_of, read_crop_index, read_crop_meta
from explainface.faces.detect import Box
from explainface.files import temporary_path
from explainface.readers.images import load_image_rgb
from explainface.readers.landmarks import write_pts


def landmark_crops(dst_root: str | os.PathLike, progress: bool = True) -> dict:
    """Write `<stem>.pts` (68 points, 0-based crop pixels) beside every face crop of the crop cache `dst_root`;
    returns the counts {"written", "cached", "no_face", "not_found", "failed", "failed_files"}."""
    from explainface.faces.landmarks import crop_landmarks, predict_landmarks68

    dst = Path(dst_root)
    meta = read_crop_meta(dst)
    if meta is None or not meta.get("complete"):
        raise ValueError(f"{dst}: not a complete crop cache (run `explainface crop` first)")
    src, size = Path(meta["source"]), int(meta["size"])
    counts: dict = {"written": 0, "cached": 0, "no_face": 0, "not_found": 0, "failed": 0, "failed_files": {}}
    for row in tqdm(read_crop_index(dst), desc="landmarks", unit="img", disable=not progress):
        crop = dst / row["image"]
        pts = crop.with_suffix(".pts")
        if row["status"] != "face":
            counts["no_face"] += 1
            continue
        if pts.is_file() and crop.is_file() and pts.stat().st_mtime_ns >= crop.stat().st_mtime_ns:
            counts["cached"] += 1
            continue
        try:
            image = load_image_rgb(src / row["source"])
            box = Box(*(float(row[k]) for k in ("left", "top", "right", "bottom")))
            lm = predict_landmarks68(image, box=box)
            if lm is None or lm.shape != (68, 2):
                counts["not_found"] += 1
                continue
            transform = chip_transform_of(row)
            if transform is None:
                square = (float(row["x0"]), float(row["y0"]), float(row["side"]))
                moved = crop_landmarks(lm, square, size)
            else:
                moved = transform_points(lm, transform).astype(lm.dtype)
            tmp = temporary_path(pts)
            os.replace(write_pts(tmp, moved), pts)
            counts["written"] += 1
        except (OSError, ValueError) as e:  # one bad source never ends the pass
            counts["failed"] += 1
            counts["failed_files"][row["source"]] = str(e)
    return counts
