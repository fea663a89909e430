"""Training configuration: small YAML files that override a base, plus ``key=value`` overrides.

A config file may name a ``base:`` (a path relative to itself); its keys
override the base's, section by section (insightface style, without a global
mutable object). Command-line overrides use dotted keys, ``optim.lr=0.01``,
with values parsed as YAML (``beta=auto``, ``epochs=3``, ``root=null``).
Unknown keys are errors, so a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelConfig:
    name: str = "vgg16_bn"
    width: float = 1.0
    input_size: int = 224
    embedding_dim: int = 512
    dropout: float = 0.0
    target_layer: str | None = None  # default: the model's own `target_layer`


@dataclass
class HeadConfig:
    name: str = "softmax"  # softmax | cosface | arcface | partial_fc
    s: float = 64.0
    m: float = 0.5
    sample_rate: float = 0.1  # partial_fc: share of class centres used per step
    margin: str = "arcface"  # partial_fc: arcface | cosface | none


@dataclass
class RegularizerConfig:
    name: str = "none"  # none | ecloss
    k: int | str = 400
    tau: float = 0.001
    radius: float | None = None
    normalize: str = "none"
    temperature: float = 0.1
    marginal: str = "uniform"
    beta: float | str = 1e-5  # a number, "auto" or "auto:<rho>"


@dataclass
class DataConfig:
    kind: str = "synthetic"  # synthetic | folder | recordio
    root: str | None = None
    identities: int = 200  # synthetic
    per_identity: int = 20  # synthetic
    difficulty: str | float = "medium"  # synthetic
    seed: int = 0  # synthetic generator seed
    workers: int = 2
    flip: bool = True


@dataclass
class ValConfig:
    pairs: str | None = None  # "synthetic", or a pairs.txt path (images under `root`)
    root: str | None = None
    heldout_identities: int = 100  # synthetic pairs
    heldout_per_identity: int = 6
    every_steps: int = 0  # 0: at the end of each epoch and of the run


@dataclass
class OptimConfig:
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    epochs: int = 10
    max_steps: int | None = None  # overrides epochs when set
    max_minutes: float | None = None  # stop (with a checkpoint) after this wall time
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | step | constant
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step schedule, fractions of the run
    gamma: float = 0.1
    grad_clip: float | None = 5.0  # max global gradient norm; null: off


@dataclass
class RunConfig:
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, off on CPU) | off | bf16 | fp16
    channels_last: str | bool = "auto"  # auto: on (faster on CUDA and on this CPU); false: off
    checkpoint_every: int = 200
    log_every: int = 10
    threads: int | None = None  # torch CPU threads; null: torch's default


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path}: circular `base:` chain")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    return _merge(_read_yaml(path.parent / base, (*seen, path)), raw)


def _build(cls, values: dict, where: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for k, v in values.items():
        f = names[k]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            if not isinstance(v, dict):
                raise ValueError(f"{where}.{k}: expected a section (mapping), got {v!r}")
            kwargs[k] = _build(sub, v, f"{where}.{k}")
        else:
            kwargs[k] = v
    return cls(**kwargs)


def parse_overrides(items: list[str]) -> dict:
    """``["optim.lr=0.01", "regularizer.beta=auto"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.key=value")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The config of `path` (following `base:`), with dotted `overrides` applied on top."""
    values = _read_yaml(Path(path)) if path is not None else {}
    values = _merge(values, parse_overrides(overrides or []))
    return _build(TrainConfig, values, str(path) if path else "config")


def config_from_dict(values: dict) -> TrainConfig:
    """Rebuild a config saved with `TrainConfig.to_dict` (e.g. from a checkpoint)."""
    return _build(TrainConfig, values, "checkpoint config")
