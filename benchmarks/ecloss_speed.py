"""ECLoss speed and memory: fast vs the naive reference, and its share of a training step.

    python benchmarks/ecloss_speed.py [--out benchmarks/results/ecloss_speed.json] [--quick]

Measures, on whatever device is given (default: CPU):

1. forward+backward time and peak extra memory of ECLoss for B=64, C=512,
   14x14 maps with K=400 and K=full, against the naive reference of the tests
   (tests/reference.py `naive_mi_loop`: a Python loop over templates with
   autograd, float64 as the tests' reference is) and, like for like, the same
   loop in float32. The naive K=full runs use fewer maps (they would take
   minutes) and their ratios are taken at that size.
2. paper-mode ECLoss(K=400) and the recommended recipe's regulariser (the method
   `recommended`, now ECLoss-fit) as fractions of one training step of vgg16_bn
   (width 0.25, input 112, batch 64; softmax head, SGD): the step with the term
   minus the step without, and the term alone on the step's target map, each
   over the step time.

Targets (issues 2 and 12): each adds at most 5% to the step; at least 20x
faster than the naive reference; K=full within 512 MiB extra peak memory.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _results import machine, write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from explainface.losses import ECLoss  # noqa: E402
from explainface.memory import peak_memory  # noqa: E402
from explainface.models import create_head, create_model  # noqa: E402

from reference import naive_mi_loop  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _maps(b: int, c: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # ReLU maps with activations of order 50 (a trained network's scale, docs/method.md §2.5)
    return torch.relu(torch.randn(b, c, 14, 14, generator=g)).mul_(50).to(device)


def time_fwd_bwd(fn, x: torch.Tensor, reps: int, device: torch.device) -> tuple[float, float]:
    """Median seconds of fn(x).backward() over `reps` runs (after one warm-up), and peak extra MiB.

    The peak is only indicative (the allocator may hold memory from earlier
    runs); `peak_in_fresh_process` gives the figure that is reported.
    """
    xx = x.detach().clone().requires_grad_()
    times = []
    with peak_memory(device) as mem:
        fn(xx).backward()  # warm-up
        for _ in range(reps):
            xx.grad = None
            _sync(device)
            t0 = time.perf_counter()
            fn(xx).backward()
            _sync(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), mem.peak_mib


_PEAK_SCRIPT = """
import sys, torch
from explainface.losses import ECLoss
from explainface.memory import peak_memory
k = sys.argv[1] if sys.argv[1] == "full" else int(sys.argv[1])
device = torch.device(sys.argv[2])
g = torch.Generator().manual_seed(0)
x = torch.relu(torch.randn(64, 512, 14, 14, generator=g)).mul_(50).to(device).requires_grad_()
module = ECLoss(k=k).to(device)
module.templates_for(14, 14, device)
with peak_memory(device) as m:
    module(x).backward()
print(m.peak_bytes)
"""


def peak_in_fresh_process(k: int | str, device: torch.device) -> float:
    """Peak extra MiB of one ECLoss forward+backward (B=64, C=512) in a fresh process.

    A fresh process, because an allocator that already grew for earlier runs
    hides the growth of this one.
    """
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(k), str(device)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1]) / 2**20


def bench_loss(device: torch.device, reps: int, naive_reps: int, naive_full_maps: int) -> list[dict]:
    rows = []
    x = _maps(64, 512, device)
    for k in (400, "full"):
        module = ECLoss(k=k).to(device)
        tmpl = module.templates_for(14, 14, device)  # build outside the measurement
        n_templates = tmpl.shape[0]
        t_fast, _ = time_fwd_bwd(module, x, reps, device)
        mem_fast = peak_in_fresh_process(k, device)
        # the naive loop's autograd keeps ~one [maps, H, W] tensor per template: K=full gets few maps
        xn = x if k == 400 else x[:1, :naive_full_maps]
        nb = xn.shape[0] * xn.shape[1]
        t_fast_same = t_fast if k == 400 else time_fwd_bwd(module, xn, reps, device)[0]
        row = {
            "k": n_templates,
            "maps": 64 * 512,
            "fast_s": t_fast,
            "fast_peak_mib": mem_fast,
            "naive_maps": nb,
            "fast_s_at_naive_size": t_fast_same,
        }
        for dtype in (torch.float64, torch.float32):
            name = "naive64" if dtype == torch.float64 else "naive32"
            reps_naive = naive_reps if k == 400 else 1
            td = tmpl.to(dtype)
            t_naive, _ = time_fwd_bwd(lambda m, td=td: -naive_mi_loop(m, td), xn.to(dtype), reps_naive, device)
            row.update({f"{name}_s": t_naive, f"speedup_vs_{name}": t_naive / t_fast_same})
        rows.append(row)
        print(
            f"K={n_templates:>6}: fast {t_fast * 1e3:8.1f} ms, peak +{mem_fast:6.0f} MiB (B*C={64 * 512}) | "
            f"at B*C={nb}: naive float64 {row['naive64_s'] * 1e3:8.0f} ms ({row['speedup_vs_naive64']:.1f}x), "
            f"naive float32 {row['naive32_s'] * 1e3:8.0f} ms ({row['speedup_vs_naive32']:.1f}x)",
            flush=True,
        )
    return rows


def recipe_regularizer() -> torch.nn.Module:
    """The recommended recipe's regulariser with its default options (the method `recommended`)."""
    from explainface.experiments.methods import RECOMMENDED, method_config
    from explainface.losses import create_regularizer
    from explainface.training.config import TrainConfig, regularizer_options

    spec = method_config(RECOMMENDED, TrainConfig()).regularizers[0]
    return create_regularizer(spec["name"], **regularizer_options(spec))


def bench_step(device: torch.device, steps: int) -> dict:
    torch.manual_seed(0)
    model = create_model("vgg16_bn", width=0.25, input_size=112).to(device)
    head = create_head("softmax", model.embedding_dim, 1000).to(device)
    variants = {"paper": ECLoss(k=400).to(device), "recommended": recipe_regularizer().to(device)}
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(64, 3, 112, 112, device=device)
    y = torch.randint(0, 1000, (64,), device=device)

    def step(reg: torch.nn.Module | None) -> float:
        _sync(device)
        t0 = time.perf_counter()
        emb, feat = model.forward_with_features(x)
        loss = F.cross_entropy(head(emb, y), y)
        if reg is not None:
            loss = loss + 1e-5 * reg(feat)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    for reg in (None, *variants.values()):  # warm-up
        step(reg)
    plain: list[float] = []
    timed: dict[str, list[float]] = {name: [] for name in variants}
    order = [None, *variants]
    for i in range(steps):  # interleaved, rotating order, so drifts hit every variant alike
        for name in order[i % len(order) :] + order[: i % len(order)]:
            (plain if name is None else timed[name]).append(step(None if name is None else variants[name]))
    t_plain = statistics.median(plain)
    with torch.no_grad():
        feat = model.forward_features(x)
    out: dict = {
        "model": "vgg16_bn width 0.25 input 112 batch 64, softmax head 1000 ids, SGD",
        "target_map": list(feat.shape),
        "step_s": t_plain,
        "step_spread_s": statistics.pstdev(plain),
        "variants": {},
    }
    for name, reg in variants.items():
        t_with = t_plain + statistics.median([w - p for w, p in zip(timed[name], plain)])
        t_alone, _ = time_fwd_bwd(reg, feat, max(5, steps), device)
        out["variants"][name] = {
            "regularizer": repr(reg),
            "step_with_s": t_with,
            "alone_s": t_alone,
            "added_fraction_by_difference": (t_with - t_plain) / t_plain,
            "added_fraction_by_alone": t_alone / t_plain,
        }
        print(
            f"step {t_plain * 1e3:.0f} ms, with {name} {t_with * 1e3:.0f} ms "
            f"(+{100 * (t_with - t_plain) / t_plain:.2f}%, median of paired differences; "
            f"step s.d. {out['step_spread_s'] * 1e3:.0f} ms); {name} alone on {list(feat.shape)}: "
            f"{t_alone * 1e3:.1f} ms = {100 * t_alone / t_plain:.2f}% of the step",
            flush=True,
        )
    paper = out["variants"]["paper"]  # the keys earlier results used
    out.update(step_with_ecloss_s=paper["step_with_s"], ecloss_alone_s=paper["alone_s"],
               added_fraction_by_difference=paper["added_fraction_by_difference"],
               added_fraction_by_ecloss_alone=paper["added_fraction_by_alone"])  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ecloss_speed.json"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--naive-full-maps", type=int, default=64, help="maps for the naive K=full runs (memory!)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.steps = 2, 2
    device = torch.device(args.device)
    info = machine()
    print(f"machine: {info}", flush=True)
    loss_rows = bench_loss(device, args.reps, naive_reps=1 if args.quick else 3, naive_full_maps=args.naive_full_maps)
    step = bench_step(device, args.steps)

    print(
        "\n| K | fast fwd+bwd (B*C=32768) | fast peak extra | naive B*C | naive float64 | speed-up "
        "| naive float32 | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in loss_rows:
        print(
            f"| {r['k']} | {r['fast_s'] * 1e3:.1f} ms | {r['fast_peak_mib']:.0f} MiB | {r['naive_maps']} | "
            f"{r['naive64_s'] * 1e3:.0f} ms | {r['speedup_vs_naive64']:.1f}x | "
            f"{r['naive32_s'] * 1e3:.0f} ms | {r['speedup_vs_naive32']:.1f}x |"
        )
    print(f"\nvgg16_bn w0.25 @112 b64 step: {step['step_s'] * 1e3:.0f} ms\n")
    print("| regulariser | added to the step (paired difference) | alone on the step's maps |")
    print("|---|---|---|")
    for name, v in step["variants"].items():
        diff, alone = 100 * v["added_fraction_by_difference"], 100 * v["added_fraction_by_alone"]
        print(f"| {name} | {diff:+.2f}% | {alone:.2f}% |")
    k400 = next(r for r in loss_rows if r["k"] == 400)
    full = next(r for r in loss_rows if r["k"] != 400)
    targets = {
        **{
            f"{name}_step_fraction_at_most_5pct": max(v["added_fraction_by_alone"], v["added_fraction_by_difference"])
            <= 0.05
            for name, v in step["variants"].items()
        },
        "speedup_at_least_20x_vs_naive_reference": k400["speedup_vs_naive64"] >= 20,
        "full_peak_at_most_512mib": full["fast_peak_mib"] <= 512,
    }
    print("targets:", targets)
    write_result({"machine": info, "loss": loss_rows, "step": step, "targets": targets}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
