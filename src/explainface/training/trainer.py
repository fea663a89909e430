"""The trainer: identity loss + beta * regulariser (paper eq. 7) with SGD, checkpoints that resume exactly.

One `Trainer(config, out_dir).train()` call runs or resumes a run in `out_dir`:

    out_dir/config.yaml            the resolved config
    out_dir/checkpoints/last.safetensors   (+ .json)  written every `checkpoint_every` steps and at the end
    out_dir/metrics.csv            every logged step: losses, lr, throughput; per regulariser <name>.loss,
                                   <name>.beta and its stats (ECLoss: <name>.mi)
    out_dir/val.csv                verification accuracy on the validation pairs
    out_dir/tb/                    TensorBoard events of the same scalars
    out_dir/curves.png             loss / beta / accuracy curves
    out_dir/summary.json           what the run did

A run killed at any moment restarts from the last checkpoint: model, head,
optimizer, beta controller, torch RNG and the position in the epoch are all
restored, and batches are a function of (seed, epoch, position), so in
deterministic mode the resumed run ends with the same weights as an
uninterrupted one (tested).
"""

from __future__ import annotations

import contextlib
import csv
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from explainface.errors import InputError, TrainingDiverged, TrainingInterrupted
from explainface.files import atomic_write_json, atomic_write_text
from explainface.losses import StepContext, create_regularizer, make_beta
from explainface.losses.beta import regularized_loss
from explainface.models import create_head, identity_loss
from explainface.models.capture import embedding_and_maps
from explainface.readers.landmarks import mirror_landmarks
from explainface.training import distributed as dd
from explainface.training.checkpoint import (
    load_checkpoint,
    load_model_weights,
    optimizer_tensors,
    prefixed,
    restore_optimizer,
    save_checkpoint,
    unprefixed,
)
from explainface.training.config import (
    TrainConfig,
    check_config,
    check_device,
    load_config,
)
from explainface.training.data import ResumableBatches, build_train_dataset, build_val_pairs
from explainface.training.pretrained import build_network
from explainface.training.regularizer_specs import regularizer_options, start_step

#: What a regulariser may ask of the data (`Regularizer.NEEDS`).
DATA_NEEDS = frozenset({"landmarks"})

#: Columns of every run's metrics.csv; each regulariser adds ``<name>.loss``, ``<name>.beta``, ``<name>.<stat>``.
METRIC_FIELDS = ["step", "epoch", "lr", "loss", "id_loss", "reg_loss", "grad_norm", "images_per_s"]


class TrainModule(nn.Module):
    """Backbone + identity head as one module, so DDP syncs both: (images, labels) -> (L_id, maps, embedding)."""

    def __init__(self, model: nn.Module, head: nn.Module, target_layer: str | None) -> None:
        super().__init__()
        self.model, self.head = model, head
        self.target_layer = target_layer

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        emb, feat = embedding_and_maps(self.model, x, self.target_layer)
        return identity_loss(self.head, emb, y), feat, emb


def regularizer_keys(specs: list[dict]) -> list[str]:
    """Log names of the configured regularisers: the name, with _2, _3 ... for repeats of one name."""
    keys, seen = [], {}
    for spec in specs:
        n = seen[spec["name"]] = seen.get(spec["name"], 0) + 1
        keys.append(spec["name"] if n == 1 else f"{spec['name']}_{n}")
    return keys


def _resolve_device(name: str, d: dd.Dist) -> torch.device:
    """The torch device of ``run.device`` (checked: an `InputError` if this build or machine lacks it); a bare
    ``cuda`` is this process's local rank."""
    dev = torch.device(check_device(name, "run.device"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", d.local_rank)
    return dev


def check_head_memory(cfg: TrainConfig, num_classes: int, device: torch.device) -> None:
    """Refuse, before allocating, an identity head that cannot fit: its float32 weights, their gradients and the
    optimiser's state (3 x identities x embedding size x 4 bytes) against the memory available now."""
    from explainface.memory import available_bytes

    if cfg.head.name == "none":
        return
    need = 3 * 4 * int(num_classes) * int(cfg.model.embedding_dim)
    have = available_bytes(str(device))
    if have is not None and need > have:
        raise InputError(f"{num_classes:,} identities x model.embedding_dim={cfg.model.embedding_dim}: the identity "
                         f"head alone needs {need / 2**30:.1f} GiB (weights, gradients and optimiser state, float32); "
                         f"{have / 2**30:.1f} GiB are available: use fewer identities or a smaller "
                         "model.embedding_dim")  # fmt: skip


def _build_head(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The identity head of ``cfg.head`` for `num_classes` identities (``none``: no identity loss)."""
    h = cfg.head
    head_kw: dict[str, Any] = {}
    if h.name in ("cosface", "arcface"):
        head_kw = {"s": h.s, "m": h.m}
    elif h.name == "partial_fc":
        head_kw = {"s": h.s, "m": h.m, "sample_rate": h.sample_rate, "margin": h.margin}
    return create_head(h.name, cfg.model.embedding_dim, num_classes, **head_kw)



def _checkpoint_network(path: str) -> nn.Module:
    """The network of a checkpoint file, in eval mode (what a regulariser that names one reads)."""
    return load_model_weights(path)[0]

class Trainer:
    """Builds everything from a `TrainConfig`, resumes from `out_dir` when it holds a checkpoint."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, progress: bool = True) -> None:
        # a config edited in code after `load_config` gets the same checks (an InputError naming the key)
        self.cfg, self.out = check_config(cfg, "the trainer's config"), Path(out_dir)
        r = cfg.run
        if r.threads:
            torch.set_num_threads(int(r.threads))
        probe = _resolve_device(r.device, dd.Dist())
        self.dist = dd.init_distributed(probe.type)
        self.device = _resolve_device(r.device, self.dist)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        torch.manual_seed(r.seed + self.dist.rank)
        if r.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self.progress = progress and self.dist.main

        m = cfg.model
        # eq. 7 with any registered regularisers, each with its own beta (no regulariser-specific code here)
        self.reg_keys = regularizer_keys(cfg.regularizers)
        self.regs = nn.ModuleList(create_regularizer(s["name"], **regularizer_options(s)) for s in cfg.regularizers)
        needs = {need for reg in self.regs for need in reg.NEEDS}
        if needs - DATA_NEEDS:
            raise ValueError(f"a regularizer needs {', '.join(sorted(needs - DATA_NEEDS))} from the data; the "
                             f"trainer provides {', '.join(sorted(DATA_NEEDS))}")  # fmt: skip
        self.with_landmarks = "landmarks" in needs
        self.dataset, self.num_classes = build_train_dataset(cfg.data, m.input_size, landmarks=self.with_landmarks)
        # the registered builder, model.identity_layers, then the pretrained model.weights (if any)
        model = build_network(m)
        check_head_memory(cfg, self.num_classes, self.device)
        head = _build_head(cfg, self.num_classes)
        # a regulariser with parameters of its own (a pair head) creates them here; one with a frozen copy of the
        # network (`preserve`) takes it here: before `_resume`, so it is always the initial (pretrained) network
        for reg in self.regs:
            reg.load_checkpoint = _checkpoint_network
            reg.setup(model)
        self.regs.to(self.device)
        self.module = TrainModule(model, head, m.target_layer).to(self.device)
        # channels-last: measured 1.3x faster training steps on the CPU too (vgg16_bn w0.25, 112, batch 64)
        self.channels_last = r.channels_last in ("auto", True)
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.betas = [make_beta(s["beta"]) for s in cfg.regularizers]
        self.metric_fields = METRIC_FIELDS + [
            f"{key}.{col}" for key, reg in zip(self.reg_keys, self.regs) for col in ("loss", "beta", *reg.STATS)
        ]
        o = cfg.optim
        # the regularisers' own parameters (an xCos head) come last: old checkpoints' optimizer indices still fit
        self.params = list(self.module.parameters()) + list(self.regs.parameters())
        self.opt = torch.optim.SGD(self.params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self.sampler = ResumableBatches(len(self.dataset), o.batch_size, r.seed, self.dist.rank, self.dist.world)
        self.total_steps = o.max_steps if o.max_steps is not None else o.epochs * self.sampler.steps_per_epoch
        if cfg.head.name == "none" and not self.regs and self.total_steps > 0:
            raise InputError("head.name=none trains without an identity loss and the config has no regularizers: "
                             "nothing to train (add regularizers, or optim.max_steps=0 to save the network as is)")
        # a regulariser with `start` is off (not computed, its beta not updated) before that step
        self.reg_starts = [start_step(s.get("start", 0), self.total_steps) for s in cfg.regularizers]
        self.loader = DataLoader(
            self.dataset, batch_sampler=self.sampler, num_workers=cfg.data.workers,
            persistent_workers=cfg.data.workers > 0, pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        val = build_val_pairs(cfg.val, cfg.data, m.input_size) if self.dist.main else None
        self.pairs, self.pair_images = val if val is not None else (None, None)
        self.step = 0
        self.ddp = None
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
            # the regularisers' own parameters are outside DDP: start every process from rank 0's, as DDP does
            dd.broadcast_from_rank0([*self.regs.parameters(), *self._reg_state_buffers()], self.dist)
        self.ckpt_path = self.out / "checkpoints" / "last.safetensors"
        self._resume()
        self._train_mode()

    # ------------------------------------------------------------------ helpers
    def _train_mode(self) -> None:
        """The network and head in train mode; with ``optim.freeze_bn`` the network's BatchNorm layers in eval mode
        (running statistics frozen: a pretrained network keeps its own)."""
        self.module.train()
        if self.cfg.optim.freeze_bn:
            for mod in self.module.model.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.eval()

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.cfg.run.amp
        if amp == "off" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]

    def lr_at(self, step: int) -> float:
        """Learning rate of a step: linear warm-up, then cosine, step or constant decay."""
        o = self.cfg.optim
        if o.warmup_steps and step < o.warmup_steps:
            return o.lr * (step + 1) / o.warmup_steps
        frac = (step - o.warmup_steps) / max(1, self.total_steps - o.warmup_steps)
        if o.schedule == "cosine":
            return o.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        if o.schedule == "step":
            return o.lr * o.gamma ** sum(step >= m * self.total_steps for m in o.milestones)
        if o.schedule == "constant":
            return o.lr
        raise ValueError(f"optim.schedule must be cosine, step or constant, got {o.schedule!r}")

    def _flip(self, x: torch.Tensor, landmarks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Random horizontal flips decided by (seed, rank, step): the same on a resumed run; the landmarks of a
        flipped face are mirrored with it (x and the left/right numbering)."""
        if landmarks is not None:
            landmarks = landmarks.to(self.device, torch.float32)
        if not self.cfg.data.flip:
            return x, landmarks
        g = torch.Generator().manual_seed((self.cfg.run.seed * 7919 + self.dist.rank) * 1_000_003 + self.step)
        mask = (torch.rand(x.shape[0], generator=g) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], torch.flip(x, dims=[3]), x)
        if landmarks is not None:
            landmarks = torch.where(mask[:, None, None], mirror_landmarks(landmarks, x.shape[3]), landmarks)
        return x, landmarks

    # ------------------------------------------------------------ checkpoints
    def save(self) -> None:
        if not self.dist.main:
            return
        opt_t, opt_meta = optimizer_tensors(self.opt)
        tensors = {
            **prefixed("model", self.module.model.state_dict()),
            **prefixed("head", self.module.head.state_dict()),
        }
        for key, reg in zip(self.reg_keys, self.regs):
            tensors.update(prefixed(f"reg.{key}", reg.state_dict()))
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "step": self.step,
            "epoch": self.step // self.sampler.steps_per_epoch,
            "total_steps": self.total_steps,
            "config": self.cfg.to_dict(),
            "optimizer": opt_meta,
            "betas": {key: b.state_dict() for key, b in zip(self.reg_keys, self.betas)},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "num_classes": self.num_classes,
            "world_size": self.dist.world,
            "pair_heads": self._pair_heads(),
        }
        bad = next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
        if bad is not None:  # never overwrite the last finite checkpoint with a diverged one
            kept = str(self.ckpt_path) if self.ckpt_path.is_file() else None
            raise TrainingDiverged(self.step, f"{bad} holds non-finite values", kept)
        save_checkpoint(self.ckpt_path, tensors, state)

    def _diverged(self, what: str, **values: float) -> None:
        """Stop: a non-finite value at this step (nothing of it is saved; `save` checks the weights too)."""
        odd = [f"{k}={v:.3g}" for k, v in values.items()
               if isinstance(v, float) and (not math.isfinite(v) or abs(v) > 1e6)]  # fmt: skip
        detail = f" ({', '.join(odd[:4])})" if odd else ""
        kept = str(self.ckpt_path) if self.ckpt_path.is_file() else None
        raise TrainingDiverged(self.step + 1, what + detail, kept)

    def _reg_state_buffers(self) -> list[torch.Tensor]:
        """The regularisers' saved buffers (BatchNorm statistics of a pair head), not caches such as templates."""
        params = {name for name, _ in self.regs.named_parameters()}
        return [t for name, t in self.regs.state_dict().items() if name not in params and t.numel()]

    def _pair_heads(self) -> dict[str, dict]:
        """The pair heads the regularisers train, for inference: name -> options and the prefix of its tensors."""
        heads: dict[str, dict] = {}
        for key, reg in zip(self.reg_keys, self.regs):
            for name, head in reg.pair_heads().items():
                path = next((n for n, mod in reg.named_modules() if mod is head), None)
                if path is None:
                    raise ValueError(f"regularizer {key!r}: pair head {name!r} is not one of its submodules")
                if name in heads:
                    raise ValueError(f"two regularizers train a pair head named {name!r}")
                heads[name] = {"options": head.options(), "prefix": f"reg.{key}.{path}".rstrip(".")}
        return heads

    def _resume(self) -> None:
        if not self.ckpt_path.is_file():
            return
        tensors, state = load_checkpoint(self.ckpt_path, self.device)
        if state["num_classes"] != self.num_classes:
            raise ValueError(
                f"{self.ckpt_path}: trained on {state['num_classes']} identities, data has {self.num_classes}"
            )
        self._check_same_network(state.get("config") or {})
        self.module.model.load_state_dict(unprefixed("model", tensors))
        self.module.head.load_state_dict(unprefixed("head", tensors))
        for key, reg in zip(self.reg_keys, self.regs):
            own = unprefixed(f"reg.{key}", tensors)
            if own:
                reg.load_state_dict(own)
            elif any(True for _ in reg.parameters()):
                raise ValueError(f"{self.ckpt_path}: the checkpoint has no weights for regularizer {key!r}")
        restore_optimizer(self.opt, tensors, state["optimizer"])
        betas = state.get("betas")
        if betas is None and "beta" in state and self.betas:  # a checkpoint from before regularisers were pluggable
            betas = {self.reg_keys[0]: state["beta"]}
        for key, b in zip(self.reg_keys, self.betas):
            if betas is None or key not in betas:
                raise ValueError(f"{self.ckpt_path}: the checkpoint has no beta state for regularizer {key!r}")
            b.load_state_dict(betas[key])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(tensors["rng.torch"].cpu())
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"].cpu(), self.device)
        self.step = int(state["step"])
        if self.dist.main:
            print(f"resuming from {self.ckpt_path} at step {self.step}", file=sys.stderr, flush=True)

    #: The settings that make a network (and its head) another one: a checkpoint trained with other values cannot
    #: be resumed.
    NETWORK_KEYS = (("model", "name"), ("model", "width"), ("model", "input_size"), ("model", "embedding_dim"),
                    ("head", "name"))  # fmt: skip

    def _check_same_network(self, saved: dict) -> None:
        """One line, not a load_state_dict traceback, when the config changed the network since the checkpoint."""
        now = self.cfg.to_dict()
        changed = [f"{a}.{b}={saved[a][b]!r} there, {now[a][b]!r} here" for a, b in self.NETWORK_KEYS
                   if a in saved and b in saved[a] and saved[a][b] != now[a][b]]  # fmt: skip
        if changed:
            raise InputError(f"{self.ckpt_path}: trained with another network ({'; '.join(changed)}); resume with "
                             "the same settings, or train into another --out")  # fmt: skip

    # ------------------------------------------------------------------- logs
    def _open_logs(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        self.metrics_path = self.out / "metrics.csv"
        self.val_path = self.out / "val.csv"
        for path, fields in ((self.metrics_path, self.metric_fields), (self.val_path, ["step", "accuracy", "std"])):
            rows = []
            if path.is_file():  # keep what the resumed checkpoint had reached, drop the rest
                with path.open() as f:
                    rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(rows)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
        except ImportError:  # TensorBoard is optional at run time; the CSV has everything
            pass

    def _log(self, path: Path, fields: list[str], row: dict, prefix: str) -> None:
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=fields).writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and v is not None and v != "":
                    self.tb.add_scalar(f"{prefix}/{k.replace('.', '/')}", float(v), row["step"])

    # --------------------------------------------------------------- training
    def train_step(self, x: torch.Tensor, y: torch.Tensor, landmarks: torch.Tensor | None = None) -> dict[str, float]:
        x, landmarks = self._flip(x.to(self.device, non_blocking=True), landmarks)
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = self.lr_at(self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        betas = [b.value for b in self.betas]
        runner = self.ddp or self.module
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        )
        with autocast:
            id_loss, feat, emb = runner(x, y)
        row: dict[str, float] = {}
        active = [i for i, first in enumerate(self.reg_starts) if self.step >= first]
        for i in set(range(len(self.regs))) - set(active):  # not started yet: logged as NaN
            key = self.reg_keys[i]
            row.update({f"{key}.{col}": math.nan for col in ("loss", "beta", *self.regs[i].STATS)})
        if active:  # eq. 7; an AutoBeta also folds in this step's gradient norms
            ctx = StepContext(images=x, labels=y, maps=feat, embedding=emb, model=self.module.model,
                              head=self.module.head, step=self.step, landmarks=landmarks)  # fmt: skip
            reg_losses = [self.regs[i].loss(ctx) for i in active]
            terms = [(self.reg_keys[i], r, self.betas[i]) for i, r in zip(active, reg_losses)]
            loss = regularized_loss(id_loss.float(), terms, features=feat)
            reg_loss = sum(betas[i] * r.detach() for i, r in zip(active, reg_losses))
            for i, r in zip(active, reg_losses):
                key = self.reg_keys[i]
                row[f"{key}.loss"], row[f"{key}.beta"] = float(r.detach()), betas[i]
                row.update({f"{key}.{k}": float(v) for k, v in self.regs[i].stats().items()})
        else:
            reg_loss = torch.zeros((), device=self.device)
            loss = id_loss.float()
        if not bool(torch.isfinite(loss.detach())):
            self._diverged(f"the loss is {float(loss.detach())}", id_loss=float(id_loss.detach()), **row)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.dist.enabled:  # the regularisers' own parameters are outside DDP: average their gradients here
            dd.average_gradients(list(self.regs.parameters()), self.dist)
        self.scaler.unscale_(self.opt)
        clip = self.cfg.optim.grad_clip
        params = [p for p in self.params if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
        if not self.scaler.is_enabled() and not bool(torch.isfinite(grad_norm)):  # (AMP skips such steps itself)
            self._diverged(f"the gradient norm is {float(grad_norm)}", loss=float(loss.detach()))
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.dist.enabled:  # and their buffers (BatchNorm statistics) follow rank 0's, as DDP's do
            dd.broadcast_from_rank0(self._reg_state_buffers(), self.dist)
        self.step += 1
        return {
            "lr": lr,
            "loss": float(loss.detach()),
            "id_loss": float(id_loss.detach()),
            "reg_loss": float(reg_loss),  # sum of beta * loss over the regularisers
            "grad_norm": float(grad_norm),
            **row,
        }

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """10-fold verification accuracy on the validation pairs (rank 0), logged to val.csv."""
        if self.pairs is None:
            return None
        from explainface.evaluate.scoring import create_scorer
        from explainface.evaluate.verification import kfold_accuracy
        from explainface.models.base import LoadedModel

        model, m = self.module.model, self.cfg.model
        heads = {name: head for reg in self.regs for name, head in reg.pair_heads().items()}
        loaded = LoadedModel(model, m.input_size, m.target_layer or model.target_layer, m.name, heads)
        scorer = create_scorer("auto", loaded)  # the run's own score: xCos for a run that trains an xCos head
        images = self.pair_images
        batches = (images[i : i + 128].to(self.device) for i in range(0, len(images), 128))
        scores = scorer.score_pairs(scorer.features(batches), self.pairs.a, self.pairs.b)
        if not np.isfinite(scores).all():  # a NaN network verifies at 50%: a failure, not a result
            kept = str(self.ckpt_path) if self.ckpt_path.is_file() else None
            raise TrainingDiverged(self.step, "the validation scores are not finite", kept)
        res = kfold_accuracy(scores, self.pairs.same, self.pairs.folds)
        row = {"step": self.step, "accuracy": res["accuracy_mean"], "std": res["accuracy_std"]}
        self._log(self.val_path, ["step", "accuracy", "std"], row, "val")
        return row

    def train(self) -> dict[str, Any]:
        """Run (or resume) until the configured number of steps or the time budget; return the summary."""
        cfg, o = self.cfg, self.cfg.optim
        if self.dist.main:
            self._open_logs()
        steps_per_epoch = self.sampler.steps_per_epoch
        start_step, start_time = self.step, time.perf_counter()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", disable=not self.progress)
        last = {}
        window_t, window_n = time.perf_counter(), 0
        every_val = cfg.val.every_steps
        stop = self.step >= self.total_steps
        try:
            while not stop:
                epoch, offset = divmod(self.step, steps_per_epoch)
                self.sampler.set_epoch(epoch, offset)
                for batch in self.loader:
                    x, y = batch[0], batch[1]
                    last = self.train_step(x, y, batch[2] if self.with_landmarks else None)
                    window_n += x.shape[0] * self.dist.world
                    if self.dist.main and (self.step % cfg.run.log_every == 0 or self.step == self.total_steps):
                        now = time.perf_counter()
                        row = {"step": self.step, "epoch": epoch, **last, "images_per_s": window_n / (now - window_t)}
                        self._log(self.metrics_path, self.metric_fields, row, "train")
                        window_t, window_n = now, 0
                        bar.set_postfix(loss=f"{last['loss']:.3f}")
                    bar.update(1)
                    if every_val and self.step % every_val == 0:
                        self.validate()
                    over_time = o.max_minutes is not None and time.perf_counter() - start_time > 60 * o.max_minutes
                    over_time = dd.all_agree(over_time, self.dist, self.device)
                    if self.step % cfg.run.checkpoint_every == 0 or self.step >= self.total_steps or over_time:
                        self.save()
                    if self.step >= self.total_steps or over_time:
                        stop = True
                        break
                else:
                    if not every_val and self.step < self.total_steps:
                        self.validate()  # end of an epoch
        except KeyboardInterrupt:
            self.save()  # the step reached so far: the same command resumes from it
            raise TrainingInterrupted(self.step, str(self.ckpt_path)) from None
        finally:
            bar.close()
        if not self.ckpt_path.is_file():  # optim.max_steps=0: the initial (pretrained) network as a checkpoint
            self.save()
        elapsed = time.perf_counter() - start_time  # training only: the final validation is not counted
        val = self.validate() if self.dist.main else None
        replica_diff = dd.replica_max_difference(self.params, self.dist)
        summary = {
            "steps": self.step,
            "total_steps": self.total_steps,
            "steps_this_session": self.step - start_step,
            "epochs": self.step / steps_per_epoch,
            "steps_per_epoch": steps_per_epoch,
            "seconds_this_session": elapsed,
            "images_per_s": (self.step - start_step) * o.batch_size * self.dist.world / max(elapsed, 1e-9),
            "epoch_seconds_estimate": elapsed / max(1, self.step - start_step) * steps_per_epoch,
            "last": last,
            "val": val,
            "world_size": self.dist.world,
            "replica_max_difference": replica_diff,
            "checkpoint": str(self.ckpt_path),
        }
        if self.dist.main:

            atomic_write_json(self.out / "summary.json", summary)
            if self.tb is not None:
                self.tb.close()
            from explainface.training.plots import plot_curves

            plot_curves(self.out)
        self.ddp = None  # it holds the process group, which shutdown must free
        dd.shutdown(self.dist)
        return summary


def train(
    config: TrainConfig | str | Path | None,
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a network: `config` is a `TrainConfig`, a YAML file (`load_config`) or None for the
    defaults, `overrides` dotted `key=value` strings on top; returns the run's summary (steps, throughput,
    verification, the checkpoint's path). `explainface train` does the same. Re-running with the same `out_dir`
    resumes from its last checkpoint."""
    return Trainer(load_config(config, list(overrides)), out_dir, progress=progress).train()


def measure_step_seconds(cfg: TrainConfig, out_dir: str | Path, steps: int = 8) -> float:
    """Seconds per training step of `cfg` on this machine: the median of `steps` timed steps after an untimed
    first one (it allocates and builds templates), each including the wait for its batch; one slow step (a page
    fault, another process) does not count. Trains in `out_dir`, which the caller may delete."""
    import copy

    cfg = copy.deepcopy(cfg)
    cfg.optim.max_steps, cfg.optim.max_minutes, cfg.val.pairs = steps + 1, None, None
    t = Trainer(cfg, out_dir, progress=False)
    times, last = [], None
    for batch in t.loader:
        t.train_step(batch[0], batch[1], batch[2] if t.with_landmarks else None)
        now = time.perf_counter()
        if last is not None:
            times.append(now - last)
        last = now
        if len(times) == steps:
            break
    return float(sorted(times)[len(times) // 2])


def read_metrics(out_dir: str | Path) -> dict[str, np.ndarray]:
    """metrics.csv of a run as columns of floats (every column of its header)."""
    with (Path(out_dir) / "metrics.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = reader.fieldnames or METRIC_FIELDS
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "", "nan") else np.nan for r in rows]) for k in fields}
