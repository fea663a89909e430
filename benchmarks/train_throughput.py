"""Training throughput: the full data pipeline against the same model fed random tensors.

    python benchmarks/train_throughput.py [--data CROP_CACHE] [--steps 20] [--workers 1] [--device cpu]

The pipeline is the trainer's own: images read from a crop cache (identity
folders made by `explainface crop`; by default a synthetic export written to a
temporary folder), decoded, resized, flipped, then model + softmax + ECLoss
(K=400, beta auto) + SGD. The reference is the same trainer step fed one
pre-made random batch, so the ratio says how much the data path costs.
Target (issue 4): ratio >= 0.9. Also the synthetic set rendered on the fly.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _results import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from explainface.training import Trainer, load_config

ROOT = Path(__file__).resolve().parents[1]


def _trainer(kind: str, root: str | None, args: argparse.Namespace, out: Path) -> Trainer:
    overrides = [
        f"model.name={args.model}", f"model.width={args.width}", f"model.input_size={args.size}",
        f"data.kind={kind}", f"data.workers={args.workers}", f"optim.batch_size={args.batch}",
        "optim.max_steps=100000", "run.checkpoint_every=100000000", f"run.device={args.device}", "val.pairs=null",
        "data.identities=100", "data.per_identity=20",
    ]  # fmt: skip
    if root:
        overrides.append(f"data.root={root}")
    cfg = load_config(ROOT / "configs/cpu/vgg16_bn_ecloss.yaml", overrides)
    return Trainer(cfg, out, progress=False)


def _time_steps(trainer: Trainer, batches, steps: int) -> float:
    """Median images/s over `steps` steps after 2 warm-up steps; `batches` yields (x, y)."""
    it = iter(batches)
    for _ in range(2):
        trainer.train_step(*next(it))
    times = []
    t = time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        trainer.train_step(x, y)
        now = time.perf_counter()
        times.append(now - t)
        t = now
    return trainer.cfg.optim.batch_size / statistics.median(times)


def _loader_forever(trainer: Trainer):
    epoch = 0
    while True:
        trainer.sampler.set_epoch(epoch)
        yield from trainer.loader
        epoch += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="crop cache (identity folders); default: a synthetic export")
    ap.add_argument("--model", default="vgg16_bn")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="explainface_tp_"))
    data = args.data
    if data is None:
        from explainface.synthetic.export import export_synthetic

        export_synthetic(tmp / "export", 100, 20, size=args.size, heldout_identities=0, workers=2, progress=False)
        data = str(tmp / "export" / "train")

    folder = _trainer("folder", data, args, tmp / "run_folder")
    random_batch = (
        torch.randn(args.batch, 3, args.size, args.size),
        torch.randint(0, folder.num_classes, (args.batch,)),
    )
    ref = _time_steps(folder, iter(lambda: random_batch, None), args.steps)
    full = _time_steps(folder, _loader_forever(folder), args.steps)
    synth = _trainer("synthetic", None, args, tmp / "run_synth")
    on_the_fly = _time_steps(synth, _loader_forever(synth), args.steps)
    result = {
        "model": f"{args.model} width {args.width} input {args.size} batch {args.batch} + softmax + ECLoss(K=400)",
        "device": args.device,
        "workers": args.workers,
        "threads": torch.get_num_threads(),
        "data": data,
        "random_tensors_images_per_s": ref,
        "crop_cache_pipeline_images_per_s": full,
        "synthetic_on_the_fly_images_per_s": on_the_fly,
        "ratio_crop_cache": full / ref,
        "ratio_synthetic": on_the_fly / ref,
        "target_ratio_0_9_met": full / ref >= 0.9,
    }
    print("| feed | images/s | ratio to random tensors |")
    print("|---|---|---|")
    print(f"| random tensors (reference) | {ref:.1f} | 1.00 |")
    print(f"| crop cache: read + decode + flip ({args.workers} worker) | {full:.1f} | {full / ref:.2f} |")
    print(f"| synthetic faces rendered on the fly | {on_the_fly:.1f} | {on_the_fly / ref:.2f} |")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
