"""Training configuration: small YAML files that override a base, plus ``key=value`` overrides.

A config file may name a ``base:`` (a path relative to itself); its keys
override the base's, section by section (insightface style, without a global
mutable object). Command-line overrides use dotted keys, ``optim.lr=0.01``,
with values parsed as YAML (``epochs=3``, ``root=null``); a number picks a list
item (``regularizers.0.beta=auto``), and a whole list is YAML too
(``regularizers=[{name: ecloss, beta: auto}]``, ``regularizers=[]``).
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


#: beta of a regulariser that does not give one: the paper's initial value (eq. 7).
DEFAULT_BETA = 1e-5
#: The single-regulariser section of configs and checkpoints made before regularisers were pluggable.
LEGACY_REGULARIZER_KEYS = ("name", "k", "tau", "radius", "normalize", "temperature", "marginal", "beta")


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
    #: Regularisers added to the identity loss, each ``{name: <registered>, beta: <float|auto|auto:rho>, <option>:
    #: <value> ...}``; the options are the registered class's constructor arguments (checked).
    regularizers: list[dict[str, Any]] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _merge(base: dict, override: dict) -> dict:
    """`override` on top of `base`, section by section; ``{"0": {...}}`` on a list edits that list item."""
    out = dict(base)
    for k, v in override.items():
        old = out.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            out[k] = _merge(old, v)
        elif isinstance(v, dict) and isinstance(old, list) and v and all(str(i).isdigit() for i in v):
            items = list(old)
            for i, sub in v.items():
                i = int(i)
                if i >= len(items):
                    raise ValueError(f"override {k}.{i}: {k} has only {len(items)} item(s)")
                items[i] = _merge(items[i], sub) if isinstance(sub, dict) and isinstance(items[i], dict) else sub
            out[k] = items
        else:
            out[k] = v
    return out


#: Keys of a ``regularizers`` item that the trainer reads; every other key is a constructor option.
REGULARIZER_ITEM_KEYS = ("name", "beta", "start")


def regularizer_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor options of one ``regularizers`` item: everything but ``name``, ``beta`` and ``start``."""
    return {k: v for k, v in spec.items() if k not in REGULARIZER_ITEM_KEYS}


def check_start(value: Any, where: str) -> int | float:
    """A regulariser's ``start``: a step (int >= 0) or a fraction of the run's steps (float in [0, 1))."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.start: expected a step (int >= 0) or a fraction of the run in [0, 1), got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{where}.start: a step must be >= 0, got {value}")
        return value
    if not 0 <= value < 1:
        raise ValueError(f"{where}.start: a fraction of the run must be in [0, 1), got {value} (a step is an int)")
    return float(value)


def start_step(start: int | float, total_steps: int) -> int:
    """The first step at which a regulariser with this ``start`` is on."""
    return start if isinstance(start, int) else int(round(start * total_steps))


def check_regularizers(value: Any, where: str = "regularizers") -> list[dict[str, Any]]:
    """Validate a ``regularizers`` list: registered names, known options; fill in ``beta`` (default 1e-5)."""
    from explainface.losses.beta import make_beta
    from explainface.losses.registry import check_regularizer_params

    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of {{name: ..., beta: ..., <option>: ...}}, got {value!r}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"{at}: expected a mapping with a `name`, got {item!r}")
        params = regularizer_options(item)
        check_regularizer_params(item["name"], params, at)
        beta = item.get("beta", DEFAULT_BETA)
        try:
            make_beta(beta)
        except ValueError as e:
            raise ValueError(f"{at}: {e}") from None
        start = check_start(item.get("start", 0), at)
        out.append({"name": item["name"], "beta": beta, **({"start": start} if start else {}), **params})
    return out


def _legacy_regularizer(section: Any, where: str) -> list[dict[str, Any]]:
    """The old single ``regularizer:`` section (``name: none|ecloss`` plus ECLoss's options) as a list."""
    if not isinstance(section, dict):
        raise ValueError(f"{where}.regularizer: expected a section (mapping), got {section!r}")
    unknown = sorted(set(section) - set(LEGACY_REGULARIZER_KEYS))
    if unknown:
        raise ValueError(f"{where}.regularizer: unknown key(s) {', '.join(unknown)}; known: "
                         f"{', '.join(LEGACY_REGULARIZER_KEYS)} (new configs use a `regularizers:` list)")  # fmt: skip
    name = section.get("name", "none")
    return [] if name in ("none", None) else [{**section, "name": name}]


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
    if cls is TrainConfig and "regularizer" in values:
        values = dict(values)
        legacy = _legacy_regularizer(values.pop("regularizer"), where)
        if "regularizers" in values:
            raise ValueError(f"{where}: give `regularizers` (a list) or the old `regularizer` section, not both")
        values["regularizers"] = legacy
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
        elif k == "regularizers":
            kwargs[k] = check_regularizers(v, f"{where}.regularizers")
        else:
            kwargs[k] = v
    return cls(**kwargs)


def parse_overrides(items: list[str]) -> dict:
    """``["optim.lr=0.01", "regularizers.0.beta=auto"]`` -> nested dict (values parsed as YAML)."""
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
    for item in overrides or []:  # one at a time, in order: `regularizers=[...]` then `regularizers.0.beta=...`
        values = _merge(values, parse_overrides([item]))
    return _build(TrainConfig, values, str(path) if path else "config")


def config_from_dict(values: dict, where: str = "checkpoint config") -> TrainConfig:
    """Rebuild (and check) a config saved with `TrainConfig.to_dict` (e.g. from a checkpoint); `where` names it in
    error messages."""
    return _build(TrainConfig, values, where)
