"""`explainface demo`: the whole pipeline on the built-in synthetic faces, in minutes on a CPU.

    held-out faces exported (identity folders, .pts, part label maps, pairs.txt)
      -> an ordinary network (softmax) and an ECLoss network (the recommended recipe, or any registered
         method: `--method ecloss` is the paper's ECLoss) trained with the same seed, data and budget
      -> verification on the held-out pairs (`verify`), explainability metrics (`explain`), pictures
         (`visualize`) -> report.html and summary.json

The training budget is time, not steps: a short calibration measures the step time on this machine, and
each network gets the number of steps that fits its share of `minutes` (so the learning-rate schedule runs
to its end instead of being cut off).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from explainface.training.config import TrainConfig

#: The two networks: (role in the report, run folder, trained with the plan's method); the model comes first.
NETWORKS = (("model", "ecloss", True), ("baseline", "softmax", False))
BASELINE_LABEL = "ordinary (softmax)"
#: Share of the budget left for everything but training (export, calibration, evaluation, pictures, report).
EVAL_SHARE = 0.2


@dataclass
class DemoPlan:
    """What the demo will do; `quick` is the CI-sized version (a tiny network, few identities)."""

    minutes: float = 8.0
    seed: int = 0
    model: str = "vgg16_bn"
    width: float = 0.25
    input_size: int = 112
    identities: int = 200
    per_identity: int = 20
    heldout_identities: int = 40
    heldout_per_identity: int = 10
    batch_size: int = 64
    explain_images: int = 100
    explain_runs: int = 5
    #: The ECLoss network's training recipe: an experiment method (`explainface.experiments.methods`);
    #: "recommended" is the project's recipe, "ecloss" the paper's ECLoss (paper mode, auto beta).
    method: str = "recommended"
    #: More options of that method, e.g. ["normalize=max", "temperature=0.1"] for "ecloss"
    ecloss_options: list[str] = field(default_factory=list)
    smoke_test: bool = False  # made by `quick()`: `--quick` reproduces it

    @classmethod
    def quick(cls, minutes: float = 0.5, seed: int = 0) -> DemoPlan:
        return cls(
            minutes=minutes, seed=seed, model="vgg13_bn", width=0.0625, identities=20,
            per_identity=6, heldout_identities=20, heldout_per_identity=4, batch_size=16, explain_images=20,
            explain_runs=2, smoke_test=True,
        )  # fmt: skip


def method_spec(plan: DemoPlan) -> str:
    """The ECLoss network's method with the plan's extra options: ``ecloss`` + [k=full] -> ``ecloss:k=full``."""
    if not plan.ecloss_options:
        return plan.method
    return plan.method + ("," if ":" in plan.method else ":") + ",".join(plan.ecloss_options)


def method_label(plan: DemoPlan) -> str:
    """How the report names the ECLoss network."""
    from explainface.experiments.methods import RECOMMENDED

    spec = method_spec(plan)
    if spec == "recommended":
        return f"ECLoss, recommended recipe ({RECOMMENDED})"
    return "ECLoss (paper mode)" if spec == "ecloss" else f"ECLoss ({spec})"


def train_config(plan: DemoPlan, ecloss: bool, max_steps: int) -> TrainConfig:
    """The config of one demo network: identical for both but for the regularisers (the plan's method)."""
    cfg = TrainConfig()
    cfg.model.name, cfg.model.width, cfg.model.input_size = plan.model, plan.width, plan.input_size
    cfg.data.kind, cfg.data.identities, cfg.data.per_identity = "synthetic", plan.identities, plan.per_identity
    cfg.data.seed, cfg.data.workers = plan.seed, 1
    cfg.val.pairs = None  # verified afterwards on the exported held-out pairs
    cfg.optim.batch_size, cfg.optim.max_steps, cfg.optim.lr = plan.batch_size, max_steps, 0.05
    cfg.optim.warmup_steps = max(1, min(50, max_steps // 10))
    cfg.run.seed, cfg.run.checkpoint_every, cfg.run.log_every = plan.seed, 10**9, 5
    if ecloss:
        from explainface.experiments.methods import method_config

        cfg = method_config(method_spec(plan), cfg)  # unknown methods and options are errors here
    return cfg


def calibrate_step_seconds(plan: DemoPlan, out: Path, steps: int = 8) -> float:
    """Seconds per training step of the ECLoss network on this machine (the slower of the two; see
    `measure_step_seconds`)."""
    from explainface.training.trainer import measure_step_seconds

    return measure_step_seconds(train_config(plan, ecloss=True, max_steps=steps + 1), out / "calibration", steps)


def demo(out_dir: str | Path = "explainface-demo", plan: DemoPlan | None = None, progress: bool = True) -> dict:
    """Run the demo into `out_dir`; returns the summary (also written to summary.json)."""
    import shutil

    from explainface.files import atomic_write_json
    from explainface.report.build import assemble_report, evaluate_model, export_heldout_faces
    from explainface.training.trainer import Trainer

    plan = plan or DemoPlan()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)

    say(f"[1/4] exporting {plan.heldout_identities} held-out synthetic identities to {out / 'faces'}")
    faces = export_heldout_faces(out / "faces", plan.input_size, plan.seed, plan.heldout_identities,
                                 plan.heldout_per_identity, progress=progress)  # fmt: skip
    step_s = calibrate_step_seconds(plan, out)
    shutil.rmtree(out / "calibration", ignore_errors=True)
    train_seconds = 60.0 * plan.minutes * (1 - EVAL_SHARE) - (time.perf_counter() - start)
    steps = max(10, int(train_seconds / 2 / step_s))
    say(f"[2/4] training 2 networks x {steps} steps ({step_s:.2f} s/step measured here; budget {plan.minutes:g} min)")
    trained = {
        name: Trainer(train_config(plan, ecloss, steps), out / name, progress=progress).train()
        for _, name, ecloss in NETWORKS
    }
    say("[3/4] verification and explainability metrics on the held-out faces")
    entries = []
    labels = {"model": method_label(plan), "baseline": BASELINE_LABEL}
    for role, name, _ in NETWORKS:
        e = evaluate_model(trained[name]["checkpoint"], out / role, faces / "heldout" / "pairs.txt",
                           faces / "heldout", plan.explain_images, plan.explain_runs, plan.seed, progress)  # fmt: skip
        e["label"] = f"{labels[role]}: {plan.model} w{plan.width:g}"
        entries.append(e)
    say("[4/4] pictures and the report")
    notes = [
        f"Both networks: {plan.model} width {plan.width:g} at {plan.input_size} px, {steps} steps of batch "
        f"{plan.batch_size} on {plan.identities} synthetic identities, seed {plan.seed}; the only difference is "
        f"the regulariser: {labels['model']}, method `{method_spec(plan)}` of `explainface experiment`.",
        f"Evaluated on {plan.heldout_identities} held-out identities never seen in training.",
    ]
    curves = {role: {"curves": out / name / "curves.png"} for role, name, _ in NETWORKS}
    command = f"explainface demo --out {out} --minutes {plan.minutes:g} --seed {plan.seed}" + "".join(
        [" --quick"] * plan.smoke_test
        + [f" --method {plan.method}"] * (plan.method != "recommended")
        + [f" --ecloss {o}" for o in plan.ecloss_options]
    )
    report = assemble_report(
        out, entries, "synthetic", title="explainface demo: ECLoss vs an ordinary network", notes=notes,
        commands=[command], extra_images=curves, seed=plan.seed,
    )  # fmt: skip
    metrics = ("pe_mean", "pe_se", "ls", "ls_channels", "ar_mean", "ar_std", "zero_share", "at_most_two_share",
               "channel_overlap")  # fmt: skip
    summary = {
        "report": str(report),
        "minutes_budget": plan.minutes,
        "seconds": time.perf_counter() - start,
        "step_seconds": step_s,
        "steps_per_network": steps,
        "plan": plan.__dict__,
        "models": {
            name: {
                "label": e["label"],
                "checkpoint": str(e["checkpoint"]),
                "train_seconds": trained[name]["seconds_this_session"],
                **{k: e["verification"][k] for k in ("accuracy_mean", "accuracy_std", "auc", "eer")},
                **{k: e["explainability"][k] for k in metrics},
            }
            for (_, name, _), e in zip(NETWORKS, entries)
        },
    }
    atomic_write_json(out / "summary.json", summary)
    say(f"report: {report}")
    return summary
