"""`explainface experiment`: every method trained on the same data, seeds and budget, evaluated the same way,
and summarised as the paper's Tables 2-5 with standard errors and paired tests (docs/method.md §11).

    OUT/plan.json                      the settings and the number of steps (fixed once: a re-run reuses it)
    OUT/faces/                         held-out synthetic faces (the default evaluation set "synthetic")
    OUT/runs/<method>/seed<k>/         one trainer run per (method, seed): checkpoints, metrics.csv, curves
        done.json                      written when its training finished
        eval/<set>/metrics.json        written when its evaluation on <set> finished (verify/ and explain/ beside)
    OUT/results.json                   every run's metrics, mean / se per method, paired tests vs the reference
    OUT/tables.md, OUT/experiment.html the tables (and curves and galleries), with the command that made them
    OUT/timing.json                    wall times (kept out of results.json so that results are reproducible)

Every method of a seed gets the same initialisation (the run seed seeds the network before anything else),
the same batches and flips (a function of the seed and the step), and the same number of steps: given by
`steps`, or calibrated once from `minutes` on the slowest method. Runs are deterministic
(`run.deterministic`), so a run killed at any moment and resumed from its checkpoint ends as an uninterrupted
one would, and re-running the command finishes exactly what is missing.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from explainface.errors import TrainingDiverged
from explainface.experiments.methods import (
    method_config,
    method_steps,
    reference_method,
    resolve_run_references,
    run_references,
    slug,
)
from explainface.files import atomic_write_json, atomic_write_text, json_safe
from explainface.parts.samples import SYNTHETIC
from explainface.stats import mean_se, paired_test
from explainface.training.config import TrainConfig, config_from_dict, load_config

#: The held-out synthetic faces with an occluder on every face (verification only: Yin's robustness claim).
SYNTHETIC_OCCLUDED = "synthetic_occluded"

VERIFY_METRICS = ("accuracy_mean", "accuracy_std", "auc", "eer")
EXPLAIN_METRICS = ("pe_mean", "pe_se", "ls", "ls_channels", "ar_mean", "ar_std", "zero_share", "at_most_two_share",
                   "channel_overlap")  # fmt: skip
#: Metrics the experiment derives from an evaluation's files (in results.json beside the others).
DERIVED_METRICS = ("parts_owned", "follows", "stays", "peak_spread")
#: A part owns a channel whose dominant part it is in at least this share of the faces.
OWNED_FREQUENCY = 0.5
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Eval-set draws use one seed for every run, so all runs are measured on the same faces (paired).
EVAL_SEED = 0


@dataclass
class ExperimentPlan:
    """What to run. Without `config`, the network and data are the CPU defaults below; `overrides` are dotted
    `key=value` config overrides applied to every run (the methods then set the regularisers)."""

    methods: list[str] = field(default_factory=lambda: ["softmax", "ecloss"])
    seeds: int = 3
    minutes: float = 8.0  # training budget per run, calibrated once into a number of steps
    steps: int | None = None  # fixes the steps instead
    data: str = SYNTHETIC  # or a training set: identity folders (a crop cache) or RecordIO
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    pairs: dict[str, str] = field(default_factory=dict)  # eval set -> verification pairs (read_pairs)
    faces: dict[str, str] = field(default_factory=dict)  # eval set -> faces with part labels (explain)
    detector: str = "hog"  # the face detector that crops the evaluation sets' photos (faces.detect.DETECTORS)
    images: int = 100  # PE/AR draws: N images, R runs
    runs: int = 5
    heldout_identities: int = 40
    heldout_per_identity: int = 10
    model: str = "vgg16_bn"
    width: float = 0.25
    input_size: int = 112
    identities: int = 200
    per_identity: int = 20
    batch_size: int = 64
    lr: float = 0.05
    quick: bool = False  # made by `quick_plan()`: `--quick` reproduces it

    @classmethod
    def quick_plan(cls, **kw: Any) -> ExperimentPlan:
        """A smoke test in about a minute (60 s measured on 2 cores): a tiny network, few faces, 2 seeds x 30 steps."""
        base = dict(seeds=2, steps=30, model="vgg13_bn", width=0.0625, identities=20, per_identity=6, batch_size=16,
                    heldout_identities=20, heldout_per_identity=4, images=20, runs=2, quick=True)  # fmt: skip
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)


@dataclass
class EvalSet:
    name: str
    pairs: str | None = None
    faces: str | None = None


# ---------------------------------------------------------------------------------------------- configuration


def base_config(plan: ExperimentPlan) -> TrainConfig:
    """The config every run shares before its method and seed (see `ExperimentPlan`)."""
    defaults = [] if plan.config else [
        f"model.name={plan.model}", f"model.width={plan.width}", f"model.input_size={plan.input_size}",
        "data.kind=synthetic", f"data.identities={plan.identities}", f"data.per_identity={plan.per_identity}",
        f"optim.batch_size={plan.batch_size}", f"optim.lr={plan.lr}", "optim.warmup_steps=50", "run.log_every=5",
        "data.workers=1",
    ]  # fmt: skip
    if plan.data != SYNTHETIC:
        root = Path(plan.data)
        kind = "recordio" if (root / "train.rec").is_file() else "folder"
        defaults += [f"data.kind={kind}", f"data.root={root}"]
    cfg = load_config(plan.config, [*defaults, *plan.overrides])
    cfg.regularizers = []
    cfg.val.pairs = None  # evaluated after training, on the experiment's sets
    cfg.optim.max_minutes = None
    cfg.run.deterministic = True  # exact resume: a killed experiment ends as an uninterrupted one
    return cfg


def run_config(base: TrainConfig, method: str, seed: int, steps: int, out: Path | None = None) -> TrainConfig:
    """The config of one run; ``run:<method>`` options (xCos's reference) become that method's checkpoint of the
    same seed in `out`."""
    cfg = method_config(method, base)
    if out is not None:
        cfg = resolve_run_references(cfg, lambda m: str(run_dir(out, m, seed) / "checkpoints" / "last.safetensors"))
    cfg.run.seed = seed
    own = method_steps(method)  # `original`: 0, the network as it is
    cfg.optim.max_steps = steps if own is None else own
    cfg.optim.warmup_steps = max(1, min(cfg.optim.warmup_steps, steps // 10))
    cfg.run.checkpoint_every = max(10, steps // 10)
    return cfg


def eval_sets(plan: ExperimentPlan, out: Path) -> list[EvalSet]:
    """The evaluation sets: the given `pairs` / `faces` by name, else the held-out synthetic faces."""
    if not plan.pairs and not plan.faces:
        heldout = out / "faces" / "heldout"
        occluded = out / "faces_occluded" / "heldout"  # the same faces, every one occluded: verification only
        return [EvalSet(SYNTHETIC, str(heldout / "pairs.txt"), str(heldout)),
                EvalSet(SYNTHETIC_OCCLUDED, str(occluded / "pairs.txt"), None)]  # fmt: skip
    names = list(dict.fromkeys([*plan.pairs, *plan.faces]))
    return [EvalSet(n, plan.pairs.get(n), plan.faces.get(n)) for n in names]


def validate(plan: ExperimentPlan) -> tuple[TrainConfig, dict[str, TrainConfig]]:
    """Everything that can be checked before training: methods and their options, seeds and budget, the training
    data and every evaluation set. Raises ValueError / FileNotFoundError naming the problem."""
    if plan.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {plan.seeds}")
    if plan.steps is not None and plan.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {plan.steps}")
    if plan.steps is None and not plan.minutes > 0:
        raise ValueError(f"--minutes must be positive, got {plan.minutes}")
    if not plan.methods:
        raise ValueError("no methods given")
    from explainface.faces.detect import DETECTORS

    if plan.detector not in DETECTORS:
        raise ValueError(f"--detector: unknown detector {plan.detector!r}; choose one of {', '.join(DETECTORS)}")
    if plan.data != SYNTHETIC and not Path(plan.data).exists():
        raise FileNotFoundError(f"--data: training data not found: {plan.data}")
    base = base_config(plan)
    if base.data.kind != "synthetic" and not base.data.root:
        raise ValueError(f"the config trains on data.kind={base.data.kind} but names no data: give --data PATH")
    configs = {m: method_config(m, base) for m in plan.methods}  # unknown methods and options fail here
    for k, (m, cfg) in enumerate(configs.items()):
        for ref in run_references(cfg):
            if ref not in plan.methods[:k]:
                raise ValueError(f"method {m!r} reads the {ref!r} run of each seed: list {ref!r} before it in "
                                 f"--methods (e.g. --methods {ref},{m})")  # fmt: skip
    from explainface.readers.images import find_images
    from explainface.readers.pairs import read_pairs

    for name in {*plan.pairs, *plan.faces}:
        if not _SET_NAME.match(name) or name == "seed":
            raise ValueError(f"evaluation set name {name!r}: use letters, digits, '_', '-' or '.' (not 'seed')")
    for name, path in plan.pairs.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"evaluation set {name!r}: pairs not found: {path}")
        read_pairs(path)  # malformed files and missing images are named here, before any training
    for name, path in plan.faces.items():
        if path != SYNTHETIC and (not Path(path).is_dir() or not find_images(Path(path))):
            raise FileNotFoundError(f"evaluation set {name!r}: no face images in {path}")
    return base, configs


def _atomic_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, obj, newline=False)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fix_steps(plan: ExperimentPlan, out: Path, base: TrainConfig, configs: dict[str, TrainConfig], say) -> dict:
    """plan.json: the settings and the steps per run. A re-run must match its settings; the steps are reused."""
    fingerprint = {
        "config": base.to_dict(),
        "eval_sets": {"pairs": plan.pairs, "faces": plan.faces},  # none: the synthetic held-out faces
        "images": plan.images,
        "runs": plan.runs,
        "heldout": [plan.heldout_identities, plan.heldout_per_identity],
    }
    if plan.detector != "hog":  # absent for the default: experiments from before the option continue
        fingerprint["detector"] = plan.detector
    old = _read_json(out / "plan.json")
    if old is not None:
        if _normalised(old.get("fingerprint")) != json.loads(json.dumps(fingerprint)):  # as plan.json holds it
            raise ValueError(f"{out} holds an experiment with other settings (plan.json); use another --out, or the "
                             "same network, data, evaluation sets and options to continue it")  # fmt: skip
        if plan.steps is not None and plan.steps != old["steps"]:
            raise ValueError(f"{out} runs {old['steps']} steps per run (plan.json), not --steps {plan.steps}")
        return old
    step_seconds: dict[str, float] = {}
    if plan.steps is not None:
        steps = plan.steps
    else:
        import shutil

        from explainface.training.trainer import measure_step_seconds

        reference = None
        for m, cfg in configs.items():
            if method_steps(m) is not None:  # its steps are its own (`original`: none to time)
                continue
            if run_references(cfg) and reference is None:  # an untrained network of the same cost stands in
                reference = _untrained_checkpoint(base, out / "calibration" / "reference.safetensors")
            cfg = resolve_run_references(cfg, lambda _m, ref=reference: str(ref))
            step_seconds[m] = measure_step_seconds(cfg, out / "calibration" / slug(m))
        shutil.rmtree(out / "calibration", ignore_errors=True)
        slowest = max(step_seconds.values(), default=0.0)
        steps = max(10, int(60 * plan.minutes / slowest)) if slowest else 10
        say(f"calibrated: {slowest:.3f} s/step (slowest method) -> {steps} steps per run")
    record = {"steps": steps, "minutes": plan.minutes if plan.steps is None else None, "step_seconds": step_seconds,
              "fingerprint": fingerprint}  # fmt: skip
    _atomic_json(out / "plan.json", record)
    return record


def _normalised(fingerprint: Any) -> Any:
    """A plan.json fingerprint with its config re-read (`config_from_dict`): config fields added since it was written
    take their defaults, which keep the old behaviour, so an old experiment still continues."""
    if not isinstance(fingerprint, dict) or not isinstance(fingerprint.get("config"), dict):
        return fingerprint
    try:
        config = config_from_dict(fingerprint["config"]).to_dict()
    except ValueError:
        return fingerprint
    return json.loads(json.dumps({**fingerprint, "config": config}))


def _untrained_checkpoint(base: TrainConfig, path: Path) -> Path:
    """An untrained network of `base` in the trainer's checkpoint format (a stand-in reference for calibration)."""
    from explainface.training.checkpoint import prefixed, save_checkpoint
    from explainface.training.pretrained import build_network

    net = build_network(base.model, weights=False)
    return save_checkpoint(path, prefixed("model", net.state_dict()), {"config": base.to_dict(), "step": 0})


# ------------------------------------------------------------------------------------------------- the runs


def crop_cache(out: Path, size: int, detector: str) -> Path:
    """Where the evaluation sets' crops are kept: one folder per input size and detector (HOG: the old name)."""
    return out / "cache" / (f"crops{size}" if detector == "hog" else f"crops{size}-{slug(detector)}")


def run_dir(out: Path, method: str, seed: int) -> Path:
    return out / "runs" / slug(method) / f"seed{seed}"


def _trained_config(folder: Path, done: dict | None) -> dict | None:
    """The config a run folder was (or is being) trained with: done.json's, else its checkpoint's; None if new."""
    if done is not None and "config" in done:
        return done["config"]
    ckpt = folder / "checkpoints" / "last.safetensors"
    if not ckpt.is_file():
        return None
    from explainface.training.checkpoint import load_checkpoint

    return load_checkpoint(ckpt)[1].get("config")


def _effective(config: dict) -> dict:
    """A config with every regulariser option spelled out (constructor defaults filled in, `start` 0), so an
    option added later with a default that keeps the old behaviour does not make old runs look different."""
    import inspect

    from explainface.losses.registry import regularizer_params

    try:  # config fields added since the run was trained take their defaults (the old behaviour)
        config = json.loads(json.dumps(config_from_dict(config).to_dict()))
    except ValueError:
        pass
    out = dict(config)
    items = []
    for item in config.get("regularizers") or []:
        try:
            defaults = {k: v for k, v in regularizer_params(item["name"]).items() if v is not inspect.Parameter.empty}
        except (KeyError, ValueError):
            defaults = {}
        items.append(json.loads(json.dumps({"start": 0, **defaults, **item}, default=str)))
    out["regularizers"] = items
    return out


def train_run(cfg: TrainConfig, folder: Path, progress: bool) -> dict:
    """Train (or resume, or skip when done.json says it finished) one run.

    A folder trained with another config (a method whose defaults changed since, e.g. `recommended`) is an error,
    never silently reused: the method's folder name does not say its defaults.
    """
    done = _read_json(folder / "done.json")
    old = _trained_config(folder, done)
    want = json.loads(json.dumps(cfg.to_dict()))
    if old is not None and _effective(old) != _effective(want):
        diff = sorted(k for k in set(old) | set(want) if old.get(k) != want.get(k))
        raise ValueError(f"{folder} was trained with other settings ({', '.join(diff)} differ: e.g. the method's "
                         "defaults changed); remove the folder to retrain it, or use another --out")  # fmt: skip
    if done is not None and done.get("steps") == cfg.optim.max_steps:
        return done
    from explainface.training.trainer import Trainer

    summary = Trainer(cfg, folder, progress=progress).train()
    done = {"steps": summary["steps"], "checkpoint": summary["checkpoint"], "seconds": summary["seconds_this_session"],
            "config": want}  # fmt: skip
    _atomic_json(folder / "done.json", done)
    return done


def evaluate_run(checkpoint: Path, folder: Path, es: EvalSet, plan: ExperimentPlan, cache: Path,
                 progress: bool) -> dict:  # fmt: skip
    """metrics.json of one run on one evaluation set (reused when present)."""
    path = folder / "eval" / es.name / "metrics.json"
    found = _read_json(path)
    if found is not None:
        return _backfill(found, path, checkpoint, es)
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    if es.pairs:
        from explainface.evaluate.verification_pipeline import verify

        v = verify(checkpoint, es.pairs, path.parent / "verify", crops_dir=cache / es.name, workers=2,
                   detector=plan.detector, progress=progress)  # fmt: skip
        metrics.update({k: v[k] for k in VERIFY_METRICS})
        metrics["tar_at_far"] = v.get("tar_at_far")
    if es.faces:
        from explainface.evaluate.explainability_pipeline import explain

        e = explain(checkpoint, es.faces, path.parent / "explain", n_faces=plan.images, runs=plan.runs,
                    seed=EVAL_SEED, detector=plan.detector, progress=progress)  # fmt: skip
        metrics.update({k: e[k] for k in EXPLAIN_METRICS})
        metrics["part_channels"] = part_channels(e["channels"], e.get("part_names") or [])
        metrics["parts_owned"] = parts_owned(e["channels"])
        metrics["peak_spread"] = e["peak_spread"]
        metrics.update(_follow(checkpoint, es))
        metrics["skipped_faces"] = e.get("skipped")
    metrics["seconds"] = time.perf_counter() - start
    _atomic_json(path, metrics)
    # as a resumed run reads it back (NaN -> null): a killed and resumed experiment aggregates the same values
    return json_safe(metrics)


# -------------------------------------------------------------------------------------------------- results


def aggregate(methods: list[str], seeds: list[int], sets: list[str], measured: dict) -> dict:
    """`measured[(method, seed)][set][metric]` -> the results.json `methods` and `paired` parts (module docstring of
    `explainface.experiments`)."""
    reference = reference_method(methods)  # the first baseline listed (softmax, original), else the first method
    keys = (*VERIFY_METRICS, *EXPLAIN_METRICS, *DERIVED_METRICS)
    out: dict[str, Any] = {"reference": reference, "methods": {}, "paired": {}}

    def series(m: str, s: str, k: str) -> list[float | None]:
        return [measured.get((m, seed), {}).get(s, {}).get(k) for seed in seeds]

    for m in methods:
        done = [seed for seed in seeds if (m, seed) in measured]
        entry: dict[str, Any] = {"seeds": [], "mean": {}, "se": {}, "n": len(done)}
        for seed in done:
            entry["seeds"].append({"seed": seed, **{s: dict(measured[(m, seed)].get(s, {})) for s in sets}})
        for s in sets:
            for k in keys:
                vals = series(m, s, k)
                if any(v is not None for v in vals):
                    mean, se, _ = mean_se(vals)
                    entry["mean"].setdefault(s, {})[k] = mean
                    entry["se"].setdefault(s, {})[k] = se
        out["methods"][m] = entry
        if m != reference:
            paired: dict[str, Any] = {}
            for s in sets:
                for k in keys:
                    a, b = series(m, s, k), series(reference, s, k)
                    if any(v is not None for v in a) and any(v is not None for v in b):
                        paired.setdefault(s, {})[k] = paired_test(a, b)
            out["paired"][m] = paired
    return out


def part_channels(channels: list[dict], part_names: list[str]) -> dict[str, int]:
    """How many channels the channel dictionary gives to each part (dominant part per channel; never-active
    channels under "none")."""
    counts = {p: 0 for p in part_names}
    for c in channels:
        key = c.get("part") or "none"
        counts[key] = counts.get(key, 0) + 1
    return counts


def parts_owned(channels: list[dict], threshold: float = OWNED_FREQUENCY) -> int:
    """How many parts own a channel: a channel whose dominant part is that part in at least `threshold` of the
    faces where the channel is active (the channel dictionary's `frequency`)."""
    return len({c["part"] for c in channels if c.get("part") and c.get("frequency", 0.0) >= threshold})


def _follow(checkpoint: Path, es: EvalSet) -> dict:
    """The follow test (`explainface.evaluate.follow`) on a faces set of model-input crops; {} for other sets
    (faces that the evaluation crops itself: moving the photo is not moving the crop)."""
    from explainface.evaluate.follow import follow_test_folder
    from explainface.faces.crop import is_model_input_folder

    if not es.faces or not is_model_input_folder(Path(es.faces)):
        return {}
    r = follow_test_folder(checkpoint, es.faces)
    return {"follows": r["follows"], "stays": r["stays"]}


def _backfill(metrics: dict, path: Path, checkpoint: Path | None = None, es: EvalSet | None = None) -> dict:
    """Metrics added after a run was evaluated, computed from the files the evaluation kept (then saved)."""
    dictionary = path.parent / "explain" / "channel_dictionary.json"
    new = dict(metrics)
    if "pe_mean" in metrics and "parts_owned" not in metrics and dictionary.is_file():
        new["parts_owned"] = parts_owned(json.loads(dictionary.read_text()))
    if "pe_mean" in metrics and "follows" not in metrics and checkpoint is not None and es is not None:
        new.update(_follow(checkpoint, es) or {"follows": None, "stays": None})
    if "pe_mean" in metrics and "peak_spread" not in metrics and checkpoint is not None and es is not None:
        from explainface.evaluate.explainability_pipeline import average_peaks

        new["peak_spread"] = average_peaks(checkpoint, es.faces, path.parent / "explain", seed=EVAL_SEED)["spread_mean"]
    if new != metrics:
        _atomic_json(path, new)
    return new


def _metric_values(metrics: dict) -> dict:
    return {k: metrics[k] for k in (*VERIFY_METRICS, *EXPLAIN_METRICS, *DERIVED_METRICS, "part_channels")
            if k in metrics}  # fmt: skip


def gallery_faces(es: EvalSet, n: int = 6) -> list[str]:
    """One face from each of the first `n` identity folders of a faces set (the galleries show n people)."""
    from explainface.readers.images import find_images

    seen: dict[Path, Path] = {}
    for p in find_images(Path(es.faces)):
        seen.setdefault(p.parent, p)
        if len(seen) == n:
            break
    return [str(p) for p in seen.values()]


def run_experiment(plan: ExperimentPlan, out_dir: str | Path, progress: bool = True,
                   command: str | None = None) -> dict:  # fmt: skip
    """Run (or continue) the experiment in `out_dir`; returns results.json's content."""
    start = time.perf_counter()
    out = Path(out_dir)
    say = print if progress else (lambda *a, **k: None)
    sets = eval_sets(plan, out)
    base, configs = validate(plan)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(plan.seeds))
    record = fix_steps(plan, out, base, configs, say)
    steps = record["steps"]
    size = base.model.input_size
    if any(s.name == SYNTHETIC and not plan.faces for s in sets):
        from explainface.report.build import export_heldout_faces

        export_heldout_faces(out / "faces", size, seed=0, identities=plan.heldout_identities,
                             per_identity=plan.heldout_per_identity, progress=progress)  # fmt: skip
        export_heldout_faces(out / "faces_occluded", size, seed=0, identities=plan.heldout_identities,
                             per_identity=plan.heldout_per_identity, progress=progress, occlusion=1.0)  # fmt: skip
    measured: dict[tuple[str, int], dict] = {}
    failed: dict[str, str] = {}
    timing: dict[str, Any] = {"runs": {}}
    total = len(seeds) * len(plan.methods)
    for seed in seeds:  # seed-major: every finished seed gives complete pairs
        for method in plan.methods:
            folder = run_dir(out, method, seed)
            k = len(measured) + 1
            if seed != seeds[0] and method_steps(method) == 0:  # the same network at every seed: measured once
                say(f"[{k}/{total}] {method}, seed {seed}: no training steps, the same network as seed {seeds[0]}")
                if (method, seeds[0]) in measured:
                    measured[(method, seed)] = measured[(method, seeds[0])]
                continue
            own = method_steps(method)
            say(f"[{k}/{total}] {method}, seed {seed}: {steps if own is None else own} steps -> {folder}")
            try:
                done = train_run(run_config(base, method, seed, steps, out), folder, progress)
            except TrainingDiverged as e:  # named, left out, and the others go on (a re-run retries it)
                say(f"[{k}/{total}] {method}, seed {seed} failed: {e}")
                failed[f"{method}/seed{seed}"] = str(e)
                _atomic_json(folder / "failed.json", {"step": e.step, "error": str(e)})
                continue
            (folder / "failed.json").unlink(missing_ok=True)
            ckpt = Path(done["checkpoint"])
            res = {}
            for es in sets:
                res[es.name] = evaluate_run(ckpt, folder, es, plan, crop_cache(out, size, plan.detector), progress)
            measured[(method, seed)] = {s: _metric_values(m) for s, m in res.items()}
            timing["runs"][f"{method}/seed{seed}"] = {
                "train_seconds": done.get("seconds"), "eval_seconds": {s: m.get("seconds") for s, m in res.items()},
            }  # fmt: skip
    results = {
        "format": "explainface-experiment",
        "version": 1,
        "title": "explainface experiment: " + " vs ".join(plan.methods),
        "command": command or reproduce_command(plan, out),
        "plan": {
            "methods": plan.methods,
            "seeds": seeds,
            "steps": steps,
            "model": base.model.name,
            "width": base.model.width,
            "input_size": size,
            "batch_size": base.optim.batch_size,
            "data": plan.data
            if plan.data != SYNTHETIC
            else f"synthetic ({base.data.identities} identities x {base.data.per_identity})",
            "eval_sets": [s.name for s in sets],
            "eval_set_sources": [asdict(s) for s in sets],
            "images": plan.images,
            "runs": plan.runs,
        },  # fmt: skip
        **aggregate(plan.methods, seeds, [s.name for s in sets], measured),
        "failed": failed,
    }
    _atomic_json(out / "results.json", results)
    from explainface.experiments.tables import tables_markdown

    atomic_write_text(out / "tables.md", tables_markdown(results))
    say("pictures and the page")
    page = write_page(results, out, plan, sets, seeds)
    timing["total_seconds_this_session"] = time.perf_counter() - start
    _atomic_json(out / "timing.json", timing)
    say(f"wrote {out / 'results.json'}, {out / 'tables.md'} and {page}")
    return results


def experiment(out_dir: str | Path, plan: ExperimentPlan | None = None, progress: bool = True, **fields: Any) -> dict:
    """Run (or continue) an experiment in `out_dir`: `plan`, or an `ExperimentPlan(**fields)` (e.g.
    ``methods=["softmax", "recommended"], seeds=3, steps=378``); returns results.json's content. `explainface
    experiment` does the same."""
    if plan is not None and fields:
        raise ValueError(f"pass a plan or its fields, not both (got {sorted(fields)})")
    return run_experiment(plan if plan is not None else ExperimentPlan(**fields), out_dir, progress=progress)


def write_page(results: dict, out: Path, plan: ExperimentPlan, sets: list[EvalSet], seeds: list[int]) -> Path:
    """Learning curves of every run, a gallery per method (its first seed), and experiment.html."""
    from explainface.experiments.page import render_experiment
    from explainface.training.plots import plot_curves

    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    runs, colors = {}, {}
    for i, m in enumerate(plan.methods):
        for seed in seeds:
            if not (run_dir(out, m, seed) / "metrics.csv").is_file():  # a method measured once (`original`)
                continue
            label = f"{m} s{seed}"
            runs[label] = run_dir(out, m, seed)
            colors[label] = palette[i % len(palette)]
    curves = plot_curves(out, out / "curves.png", runs=runs, colors=colors)
    faces_set = next((s for s in sets if s.faces), None)
    galleries: dict[str, dict[str, str]] = {}
    if faces_set is not None:
        from explainface.explanations.visualize import visualize

        people = gallery_faces(faces_set)
        for m in plan.methods:
            folder = out / "galleries" / slug(m)
            run = run_dir(out, m, seeds[0])
            pics = {"gallery": folder / "gallery.png", "channel_dictionary": folder / "channel_dictionary.png"}
            peaks_png = run / "eval" / faces_set.name / "explain" / "average_peaks.png"
            if not all(p.is_file() for p in pics.values()):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    written = visualize(run / "checkpoints" / "last.safetensors", people, folder,
                                        dictionary=run / "eval" / faces_set.name / "explain" / "explainability.json",
                                        n_people=len(people), seed=EVAL_SEED)  # fmt: skip
                pics = {k: written[k] for k in pics if k in written}
            galleries[m] = {k: str(v) for k, v in pics.items()}
            if peaks_png.is_file():
                galleries[m]["average_peaks"] = str(peaks_png)
    return render_experiment(results, out / "experiment.html", curves=curves, galleries=galleries,
                             gallery_set=faces_set.name if faces_set else None)  # fmt: skip


def reproduce_command(plan: ExperimentPlan, out: Path) -> str:
    args = ["explainface", "experiment", "--methods", ",".join(plan.methods), "--seeds", str(plan.seeds)]
    if plan.quick:
        args.append("--quick")
    args += ["--steps", str(plan.steps)] if plan.steps is not None else ["--minutes", f"{plan.minutes:g}"]
    args += ["--out", str(out)]
    if plan.data != SYNTHETIC:
        args += ["--data", plan.data]
    if plan.config:
        args += ["--config", plan.config]
    for flag, sets in (("--pairs", plan.pairs), ("--faces", plan.faces)):
        for name, path in sets.items():
            args += [flag, f"{name}={path}"]
    defaults = ExperimentPlan.quick_plan() if plan.quick else ExperimentPlan()
    if plan.detector != defaults.detector:
        args += ["--detector", plan.detector]
    if plan.images != defaults.images:
        args += ["--images", str(plan.images)]
    if plan.runs != defaults.runs:
        args += ["--runs", str(plan.runs)]
    return shlex.join(args + plan.overrides)


# ---------------------------------------------------------------------------------------------------- CLI
