#!/usr/bin/env python
"""Peak memory of reading one very large photo (issue 15): full decode (the reference) vs the reduced decode the
pipeline now uses, for the crop (face detection + crop), the model-input resize of `verify --crop none`, and
`explain`'s face loading with landmarks.

Each case runs in a fresh Python process and reports its peak resident memory above what the process held after
its imports (the Linux high-water mark, reset after the imports: `explainface.memory`), so the numbers are the
image's cost. Writes ``benchmarks/results/big_image_memory.json``.

    .venv/bin/python benchmarks/big_image_memory.py [--side 10000]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = {
    "crop (haar), full decode": """
from explainface.faces.crop import crop_face
from explainface.faces.detect import create_detector
from explainface.readers.images import load_image_rgb
det = create_detector("haar")
crop, info = crop_face(load_image_rgb(PATH), det, size=112)
""",
    "crop (haar), reduced decode": """
import numpy as np
from explainface.faces.crop import crop_face_file
from explainface.faces.detect import create_detector
det = create_detector("haar")
crop, info = crop_face_file(np.fromfile(PATH, np.uint8), PATH, det, size=112)
""",
    "resize to 112, full decode": """
from explainface.readers.images import load_image_rgb, resize_image
x = resize_image(load_image_rgb(PATH), 112)
""",
    "resize to 112, reduced decode": """
from explainface.readers.images import load_image_rgb, resize_image
x = resize_image(load_image_rgb(PATH, max_side=224), 112)
""",
    "explain face (pts, no crop)": """
from explainface.parts.samples import face_sample
s = face_sample(PATH, 112, crop="none", landmarks="file")
""",
}

RUNNER = """
import sys
PATH = sys.argv[1]
import numpy as np, cv2, torch  # the imports' memory is not the image's
import explainface.faces.crop, explainface.faces.detect  # noqa: E401
import explainface.readers.images, explainface.evaluate.explainability_pipeline  # noqa: E401
from explainface.memory import peak_memory
with peak_memory() as m:
    exec(sys.argv[2])
print(m.peak_mib, m.exact)
"""


def make_image(path: Path, side: int) -> None:
    """A large JPEG: a synthetic face scaled up to `side` px, with its 68 landmarks scaled into a `.pts`."""
    import cv2
    import numpy as np

    from explainface.readers.landmarks import write_pts
    from explainface.synthetic import SyntheticFaces

    face = SyntheticFaces(seed=0).sample(identity=1, index=0, size=256)
    big = cv2.resize(face.image, (side, side), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    del big
    write_pts(path.with_suffix(".pts"), (np.asarray(face.landmarks, np.float64) + 0.5) * side / 256 - 0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=10000, help="the photo's side in pixels (default 10000)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "big_image_memory.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jpg"
        make_image(path, args.side)
        print(f"{args.side} x {args.side} JPEG, {path.stat().st_size / 1e6:.1f} MB")
        print(f"{'case':<32} {'peak MiB':>9}")
        for name, code in CASES.items():
            r = subprocess.run([sys.executable, "-c", RUNNER, str(path), code], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"{name} failed:\n{r.stderr}")
            mib, exact = r.stdout.strip().splitlines()[-1].split()
            mb = float(mib)
            rows.append({"case": name, "peak_mib": round(mb, 1), "exact": exact == "True"})
            print(f"{name:<32} {mb:9.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"side": args.side, "machine": platform.processor() or platform.machine(),
                               "python": platform.python_version(), "rows": rows}, indent=2))  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
