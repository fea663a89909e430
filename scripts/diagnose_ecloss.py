"""Why paper-mode ECLoss leaves the maps as they are: MI, its gradient and the peaks vs activation scale and steps.

    python scripts/diagnose_ecloss.py --out runs/diagnosis [--steps 300 --probe-every 25 --models vgg16_bn,vgg16]

For each network (the CPU default vgg16_bn w0.25 at 112 px, and the same VGG16 without BatchNorm) it trains
paper-mode ECLoss (K = 400, tau = 1e-3, auto beta) on the synthetic faces with the project's trainer and, every
`--probe-every` steps, measures on one fixed training batch (a copy of the network in training mode, so the
maps are those the loss sees):

* MI / log K (paper eq. 5; 1 = every map matches one template with certainty);
* |dECLoss/dX| / |dL_id/dX| at the target maps X (the ratio auto beta divides rho by), and beta times it
  (what the regulariser actually adds to the gradient, relative to the identity loss);
* the mean peak count of the maps (AR's count, docs/method.md §7.5) and the activation scale (mean per-map max);
* the same gradient ratio for ECLoss-fit (explainface.losses.fit), which does not depend on the scale.

Then, on the final network's maps X, the scale sweep: MI(sX) / log K and s |dECLoss(sX)/d(sX)| / |dL_id/dX|
for s from 1e-2 to 1e4 (what the loss would do if the same maps were s times larger, e.g. without BN).

Finally the *oracle*: what the metrics allow at all on these faces. For each held-out face and part, an ideal
part detector's map is the share of each target-map cell that the part covers (the part mask area-averaged to
14 x 14); its top-10% mask at the input size is scored like any channel's. How often each oracle channel is
labelled with its own part bounds the channel dictionary (a part whose perfect detector is labelled with another
part in most faces cannot own a channel), and the oracle's LS and PE bound what channels can reach.

`--follow CKPT [CKPT ...]` asks of trained networks whether their channels *follow the face*: every held-out
face is also shown moved right by `--shift` px (border replicated), and each channel's peak (argmax cell) is
compared: a detector's peak moves with the face (by shift / stride cells), a channel that fires at a fixed place
whatever the face does stays. On roughly aligned crops LS cannot tell the two apart; this can.

Writes OUT/diagnosis.json and OUT/diagnosis.png; resumable per network (OUT/<model>/steps.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import torch

from explainface.evaluate.peaks import count_peaks
from explainface.losses import ECLoss, FitECLoss
from explainface.training.config import load_config
from explainface.training.trainer import Trainer

SCALES = [10.0**e for e in (-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4)]


def grad_norm(loss: torch.Tensor, x: torch.Tensor) -> float:
    (g,) = torch.autograd.grad(loss, x, retain_graph=True)
    return float(g.norm())


def probe(trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor], ec: ECLoss, fit: FitECLoss) -> dict:
    module = copy.deepcopy(trainer.module).train()  # BN batch statistics as in training, running stats untouched
    x, y = batch
    id_loss, maps, _ = module(x, y)
    maps = maps.float()
    g_id = grad_norm(id_loss, maps)
    mi = ec.mutual_information(maps)
    g_ec = grad_norm(-mi, maps)
    g_fit = grad_norm(fit(maps), maps)
    m = maps.detach()
    k = ec.templates.shape[0]
    beta = trainer.betas[0].value if trainer.betas else float("nan")  # nan: a softmax control run
    return {
        "step": trainer.step,
        "mi_over_logk": float(mi) / math.log(k),
        "grad_ratio": g_ec / max(g_id, 1e-30),
        "beta": beta,
        "beta_times_ratio": beta * g_ec / max(g_id, 1e-30),
        "fit_grad_ratio": g_fit / max(g_id, 1e-30),
        "peaks": float(count_peaks(m.flatten(0, 1)).double().mean()),
        "activation_max": float(m.flatten(2).amax(2).mean()),
        "activation_mean": float(m.mean()),
        "id_loss": float(id_loss),
    }


def scale_sweep(trainer: Trainer, batch, ec: ECLoss) -> list[dict]:
    module = copy.deepcopy(trainer.module).train()
    x, y = batch
    id_loss, maps, _ = module(x, y)
    maps = maps.float()
    g_id = grad_norm(id_loss, maps)
    base = maps.detach().double()  # float64: at small scales MI is below float32's resolution of log K
    k = ec.templates.shape[0]
    rows = []
    for s in SCALES:
        z = (s * base).requires_grad_(True)
        mi = ec.mutual_information(z)
        (g,) = torch.autograd.grad(-mi, z)
        rows.append({"scale": s, "mi_over_logk": float(mi) / math.log(k), "grad_ratio": s * float(g.norm()) / g_id,
                     "peak_logit_spread_nats": float(ec.tau * s * base.flatten(2).amax(2).mean())})  # fmt: skip
    return rows


def run_model(model: str, out: Path, steps: int, every: int, method: str = "ecloss") -> dict:
    name = model if method == "ecloss" else f"{model}_{method}"
    done = out / name / "steps.json"
    if done.is_file():
        return json.loads(done.read_text())
    overrides = [f"model.name={model}", f"optim.max_steps={steps}", "run.checkpoint_every=100000", "val.every_steps=0"]
    cfg = load_config(f"configs/cpu/vgg16_bn_{method}.yaml", overrides)
    trainer = Trainer(cfg, out / name / "run", progress=False)
    ec, fit = ECLoss().to(trainer.device), FitECLoss().to(trainer.device)
    batch = None
    history = []
    epoch = 0
    while trainer.step < steps:
        trainer.sampler.set_epoch(epoch, 0)
        for x, y in trainer.loader:
            if batch is None:
                batch = (x.to(trainer.device), y.to(trainer.device))
                history.append(probe(trainer, batch, ec, fit))
            last = trainer.train_step(x, y)
            if not math.isfinite(last["loss"]):
                print(f"{model}: loss is {last['loss']} at step {trainer.step}; stopping", file=sys.stderr)
                steps = trainer.step
                break
            if trainer.step % every == 0 or trainer.step == steps:
                history.append(probe(trainer, batch, ec, fit))
                h = history[-1]
                print(
                    f"{model} step {h['step']}: MI/logK {h['mi_over_logk']:.2e} ratio {h['grad_ratio']:.2e} "
                    f"beta {h['beta']:.3g} peaks {h['peaks']:.2f} act max {h['activation_max']:.3g}",
                    flush=True,
                )
            if trainer.step >= steps:
                break
        epoch += 1
    result = {"model": name, "method": method, "steps": history, "scale": scale_sweep(trainer, batch, ec)}
    done.parent.mkdir(parents=True, exist_ok=True)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(done)
    return result


def oracle_parts(faces: Path, size: int = 112, map_size: int = 14, limit: int = 400) -> dict:
    """Ideal part detectors scored by the explainability metrics (module docstring), on `limit` exported faces."""
    import cv2
    import numpy as np

    from explainface.evaluate.explainability import location_consistency, masks_from_labels, part_iou
    from explainface.parts.labels import PART_NAMES
    from explainface.parts.samples import load_label_png

    files = sorted(faces.rglob("*.parts.png"))[:limit]
    if not files:
        raise SystemExit(f"{faces}: no *.parts.png part label maps (export held-out synthetic faces first)")
    labels = torch.from_numpy(np.stack([load_label_png(f, (size, size)) for f in files]).astype(np.int64))
    parts = masks_from_labels(labels)  # [N, 7, S, S]
    n, k = parts.shape[:2]
    p = parts.numpy().astype(np.float32)
    maps = torch.from_numpy(np.stack([[cv2.resize(p[i, j], (map_size, map_size), interpolation=cv2.INTER_AREA)
                                       for j in range(k)] for i in range(n)]))  # fmt: skip
    iou = part_iou(maps.double(), parts, size)  # [N, channel = part, part]
    winner = iou.argmax(2)
    names = PART_NAMES[1:]
    own = {names[j]: float((winner[:, j] == j).double().mean()) for j in range(k)}
    return {
        "faces": n,
        "part_area_px": {names[j]: float(parts[:, j].sum((1, 2)).double().mean()) for j in range(k)},
        "top_mask_px": round(0.1 * size * size),
        "own_part_frequency": own,
        "ownable_parts": [name for name, f in own.items() if f >= 0.5],
        "ls": location_consistency(iou)["ls"],
        "pe": float(iou.amax(2).mean()),
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(18, 4))
    for r in results:
        st = r["steps"]
        steps = [h["step"] for h in st]
        ax[0].semilogy(steps, [max(h["mi_over_logk"], 1e-12) for h in st], label=f"{r['model']}: MI / log K")
        ax[1].semilogy(steps, [h["grad_ratio"] for h in st], label=f"{r['model']}: |g_ECLoss| / |g_id|")
        if r.get("method", "ecloss") != "ecloss":
            ax[2].plot(steps, [h["peaks"] for h in st], ":", label=f"{r['model']} (no ECLoss): peaks per map")
            ax[0].semilogy(steps, [max(h["activation_max"], 1e-12) for h in st], ":",
                           label=f"{r['model']} (no ECLoss): activation max")  # fmt: skip
            continue
        ax[0].semilogy(steps, [max(h["activation_max"], 1e-12) for h in st], "--",
                       label=f"{r['model']}: activation max")  # fmt: skip
        ax[1].semilogy(steps, [h["beta_times_ratio"] for h in st], "--",
                       label=f"{r['model']}: beta |g_ECLoss| / |g_id|")  # fmt: skip
        ax[1].semilogy(steps, [h["fit_grad_ratio"] for h in st], ":", label=f"{r['model']}: |g_fit| / |g_id|")
        ax[2].plot(steps, [h["peaks"] for h in st], label=f"{r['model']}: peaks per map")
        sc = r["scale"]
        natural = st[-1]["activation_max"]
        if not natural < 1e6:  # a run whose activations ran away: its sweep says nothing
            continue
        line = ax[3].loglog([s["scale"] * natural for s in sc], [max(s["mi_over_logk"], 1e-12) for s in sc],
                            label=f"{r['model']}: MI / log K")  # fmt: skip
        ax[3].loglog([s["scale"] * natural for s in sc], [s["grad_ratio"] for s in sc], "--",
                     color=line[0].get_color(), label=f"{r['model']}: |g_ECLoss| / |g_id|")  # fmt: skip
        ax[3].axvline(natural, color=line[0].get_color(), lw=0.8, alpha=0.6)
    ax[0].set(title="MI / log K and the largest activation (paper mode)", xlabel="step")
    ax[1].set(title="gradient at the target maps, relative to L_id's", xlabel="step")
    ax[2].set(title="peaks per map (probe batch)", xlabel="step")
    ax[3].set(
        title="if the final maps were scaled (vertical: as trained)",
        xlabel="mean per-map max activation",
        ylim=(1e-10, 10),
    )
    for a in ax:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/diagnosis")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--probe-every", type=int, default=25)
    p.add_argument("--models", default="vgg16_bn,vgg16")
    p.add_argument("--controls", default="vgg16", help="networks also trained without ECLoss (softmax), as controls")
    p.add_argument(
        "--faces",
        default="runs/exp_default/faces/heldout",
        help="held-out synthetic faces with part labels, for the oracle (explainface synth / experiment)",
    )
    p.add_argument("--oracle-only", action="store_true")
    p.add_argument(
        "--follow",
        nargs="+",
        default=[],
        metavar="CKPT",
        help="only the follow test on these checkpoints (e.g. an experiment's runs/*/seed0)",
    )
    p.add_argument("--shift", type=int, default=16)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if a.follow:
        from explainface.evaluate.follow import follow_test_folder

        rows = [{"checkpoint": c, **follow_test_folder(c, a.faces, shift=a.shift)} for c in a.follow]
        for r in rows:
            print(f"{r['checkpoint']}: follows {100 * r['follows']:.1f}%, stays {100 * r['stays']:.1f}%, mean move "
                  f"{r['mean_move_cells']:.2f} cells (a detector: {r['expected_cells']:g})")  # fmt: skip
        (out / "follow.json").write_text(json.dumps(rows, indent=2))
        return 0
    oracle = oracle_parts(Path(a.faces))
    print("oracle (ideal part detectors):", json.dumps(oracle, indent=1))
    if a.oracle_only:
        (out / "oracle.json").write_text(json.dumps(oracle, indent=2))
        return 0
    results = [run_model(m, out, a.steps, a.probe_every) for m in a.models.split(",")]
    results += [run_model(m, out, a.steps, a.probe_every, "softmax") for m in filter(None, a.controls.split(","))]
    (out / "diagnosis.json").write_text(json.dumps({"networks": results, "oracle": oracle}, indent=2))
    plot(results, out / "diagnosis.png")
    for r in results:
        first, last = r["steps"][0], r["steps"][-1]
        print(f"{r['model']}: MI/logK {first['mi_over_logk']:.2e} -> {last['mi_over_logk']:.2e}, grad ratio "
              f"{first['grad_ratio']:.2e} -> {last['grad_ratio']:.2e}, beta {last['beta']:.3g}, peaks "
              f"{first['peaks']:.2f} -> {last['peaks']:.2f}, activation max {last['activation_max']:.3g}")  # fmt: skip
    print(f"wrote {out / 'diagnosis.json'} and {out / 'diagnosis.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
