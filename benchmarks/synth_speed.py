"""Synthetic face generation speed: images per second per core, landmarks and part masks included.

    python benchmarks/synth_speed.py [--size 112] [--images 2000] [--out benchmarks/results/synth_speed.json]

Renders `images` samples over fresh identities (identity sampling included) in
one process with OpenCV limited to one thread (per core), then with one worker
process per core. The reference it must beat is the consumer: one training step
of vgg16_bn (width 0.25, input 112, batch 64) on the same machine, measured in
the same run; the ratio says how many times faster the generator is than the
training it feeds. Target (issue 3): at least 300 images/s per core at 112.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F
from _results import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from explainface.synthetic import SyntheticFaces

ROOT = Path(__file__).resolve().parents[1]


def _render_range(args: tuple[int, int, int, int]) -> int:
    seed, start, count, size = args
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    faces = SyntheticFaces(seed)
    for n in range(start, start + count):
        s = faces.sample(n // 10, n % 10, size)  # 10 samples per identity: identities are new all the time
        assert s.parts.shape == (size, size) and s.landmarks.shape == (68, 2)
    return count


def single_core(size: int, images: int) -> float:
    _render_range((0, 0, 50, size))  # warm-up (imports, caches)
    t0 = time.perf_counter()
    _render_range((1, 0, images, size))
    return images / (time.perf_counter() - t0)


def all_cores(size: int, images: int, workers: int) -> float:
    chunk = images // workers
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_render_range, [(0, i * 50, 50, size) for i in range(workers)])  # warm-up
        t0 = time.perf_counter()
        pool.map(_render_range, [(2, i * chunk, chunk, size) for i in range(workers)])
        return chunk * workers / (time.perf_counter() - t0)


def training_images_per_s(steps: int = 4) -> float:
    from explainface.models import create_head, create_model

    torch.set_num_threads(os.cpu_count() or 1)
    model = create_model("vgg16_bn", width=0.25, input_size=112)
    head = create_head("softmax", 512, 1000)
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.01)
    x, y = torch.randn(64, 3, 112, 112), torch.randint(0, 1000, (64,))

    def step() -> None:
        loss = F.cross_entropy(head(model(x), y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return 64 * steps / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "synth_speed.json"))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    one = single_core(args.size, args.images)
    many = all_cores(args.size, args.images, cores)
    train = training_images_per_s()
    result = {
        "size": args.size,
        "images": args.images,
        "cores": cores,
        "cpu": platform.processor() or platform.machine(),
        "images_per_s_one_core": one,
        "images_per_s_all_cores": many,
        "images_per_s_per_core_all_cores": many / cores,
        "training_images_per_s_vgg16_bn_w025_112_b64": train,
        "generator_over_training_one_core": one / train,
        "target_300_per_core_met": one >= 300,
    }
    print(f"| size | one core | {cores} processes | per core | training consumes | ratio (one core / training) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.size} | {one:.0f} img/s | {many:.0f} img/s | {many / cores:.0f} img/s | {train:.0f} img/s "
        f"| {one / train:.1f}x |"
    )
    print("target >= 300 img/s per core:", "met" if one >= 300 else "NOT met")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
