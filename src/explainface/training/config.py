"""Training configuration: small YAML files that override a base, plus ``key=value`` overrides.

A config file may name a ``base:`` (a path relative to itself); its keys
override the base's, section by section (insightface style, without a global
mutable object). Command-line overrides use dotted keys, ``optim.lr=0.01``,
with values parsed as YAML (``epochs=3``, ``root=null``); a number picks a list
item (``regularizers.0.beta=auto``), and a whole list is YAML too
(``regularizers=[{name: ecloss, beta: auto}]``, ``regularizers=[]``).

Every value is checked when the config is loaded (`load_config`, `config_from_dict`): its type from the dataclass
annotation (a bool is not an int, an int is a fine float, numbers are finite) and its range or choices from the
`Rule` beside each field (`ruled`; model and head names from their registries). Unknown keys are errors, so a typo
never silently trains the wrong thing. A bad value is an `InputError` (a ValueError) that names the key and where
it came from: ``<file>: optim.lr: must be a number > 0, got 'abc'`` for a key set in a file (the file of the
``base:`` chain that set it), ``optim.batch_size: must be ... (override 'optim.batch_size=-1')`` for one set by an
override. Whether a device is available is checked where it is used (`check_device`): a config saved on a GPU
machine still loads on a CPU one.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from explainface.errors import InputError
from explainface.training.config_rules import NO_RULE, Rule, accepts, brief, describe, ruled
from explainface.training.regularizer_specs import check_regularizers, legacy_regularizers

# ------------------------------------------------------------------------------------------ value checks

#: ``data.kind``: where the training images come from (`explainface.training.data.build_train_dataset`); ``images``:
#: every image under one or more folders, unlabelled (all label 0: for training without the identity loss).
DATA_KINDS = ("synthetic", "folder", "recordio", "images")
#: ``optim.schedule`` (`Trainer.lr_at`).
SCHEDULES = ("cosine", "step", "constant")
#: ``run.amp``: mixed precision.
AMP_MODES = ("auto", "off", "bf16", "fp16")
#: ``head.margin``: the margin of a Partial FC head.
PARTIAL_FC_MARGINS = ("arcface", "cosface", "none")
#: Devices that ``run.device`` may name (`check_device` says whether this machine has it).
DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
#: Synthetic validation pairs make 10 folds of disjoint identities, each needing two identities.
PAIR_FOLDS = 10


def _model_names() -> list[str]:
    from explainface.models import list_models

    return list_models()


def _head_names() -> list[str]:
    from explainface.models.heads import list_heads

    return list_heads()


def _difficulties() -> list[str]:
    from explainface.synthetic.generator import DIFFICULTIES

    return sorted(DIFFICULTIES)


# ------------------------------------------------------------------------------------------ the sections


@dataclass
class ModelConfig:
    name: str = ruled("vgg16_bn", choices=_model_names)
    width: float = ruled(1.0, lo=0, hi=8, lo_open=True)
    input_size: int = ruled(224, lo=1)
    embedding_dim: int = ruled(512, lo=1, hi=65536)  # face embeddings are 128 to 4096 wide; 1e11 fails to allocate
    dropout: float = ruled(0.0, lo=0, hi=1, hi_open=True)
    target_layer: str | None = None  # default: the model's own `target_layer`
    #: Pretrained weights loaded right after the network is built (`explainface.training.pretrained`): a
    #: ``.pth``/``.pt`` state dict (read with ``weights_only=True``), a ``.safetensors`` state dict or an
    #: explainface checkpoint. null: the builder's own initialisation (or its own weights, e.g. dlib's).
    weights: str | None = None
    #: Parameter-free layers replaced by the identity after building (e.g. ``[act3]``: an iresnet exactly as
    #: insightface runs it, without the ReLU this port adds after ``layer3``; its ``added_layers``).
    identity_layers: list[str] = field(default_factory=list)


@dataclass
class HeadConfig:
    name: str = ruled("softmax", choices=_head_names)  # softmax | cosface | arcface | partial_fc
    s: float = ruled(64.0, lo=0, lo_open=True)
    m: float = ruled(0.5, lo=0)
    sample_rate: float = ruled(0.1, lo=0, hi=1, lo_open=True)  # partial_fc: share of class centres used per step
    margin: str = ruled("arcface", choices=PARTIAL_FC_MARGINS)  # partial_fc: arcface | cosface | none


@dataclass
class DataConfig:
    kind: str = ruled("synthetic", choices=DATA_KINDS)  # synthetic | folder | recordio | images
    root: str | list[str] | None = None  # images: one folder or a list of folders
    identities: int = ruled(200, lo=1)  # synthetic
    per_identity: int = ruled(20, lo=1)  # synthetic
    difficulty: str | float = ruled("medium", lo=0, hi=3, choices=_difficulties)  # synthetic
    seed: int = ruled(0, lo=0)  # synthetic generator seed
    workers: int = ruled(2, lo=0, hi=256)
    flip: bool = True


@dataclass
class ValConfig:
    pairs: str | None = None  # "synthetic", or a pairs.txt path (images under `root`)
    root: str | None = None
    heldout_identities: int = ruled(100, lo=1)  # synthetic pairs
    heldout_per_identity: int = ruled(6, lo=1)
    every_steps: int = ruled(0, lo=0)  # 0: at the end of each epoch and of the run


@dataclass
class OptimConfig:
    lr: float = ruled(0.03, lo=0, lo_open=True)
    momentum: float = ruled(0.9, lo=0, hi=1, hi_open=True)
    weight_decay: float = ruled(5e-4, lo=0)
    batch_size: int = ruled(64, lo=1)
    epochs: int = ruled(10, lo=1)
    #: Overrides epochs when set; 0: no training, the initial (e.g. pretrained) network saved as a checkpoint.
    max_steps: int | None = ruled(None, lo=0)
    max_minutes: float | None = ruled(None, lo=0, lo_open=True)  # stop (with a checkpoint) after this wall time
    warmup_steps: int = ruled(100, lo=0)
    schedule: str = ruled("cosine", choices=SCHEDULES)  # cosine | step | constant
    #: The step schedule's milestones, fractions of the run.
    milestones: list[float] = ruled(factory=lambda: [0.5, 0.75], lo=0, hi=1)
    gamma: float = ruled(0.1, lo=0, lo_open=True)
    grad_clip: float | None = ruled(5.0, lo=0, lo_open=True)  # max global gradient norm; null: off
    #: BatchNorm layers of the network in eval mode while training: running statistics frozen (their scale and
    #: shift still train). For fine-tuning a pretrained network (the retrofit): its statistics stay its own.
    freeze_bn: bool = False


@dataclass
class RunConfig:
    #: The trainer seeds torch generators with (seed * 7919 + rank) * 1_000_003 + step: < 2**64 for seeds < 2**31.
    seed: int = ruled(0, lo=0, hi=2**31, hi_open=True)
    deterministic: bool = False
    device: str = ruled("auto", pattern=_DEVICE_RE, words=DEVICE_NAMES)  # auto | cpu | cuda | cuda:N
    amp: str = ruled("auto", choices=AMP_MODES)  # auto (bf16/fp16 on CUDA, off on CPU) | off | bf16 | fp16
    channels_last: str | bool = ruled("auto", choices=("auto",))  # auto: on (faster on CUDA and on this CPU)
    checkpoint_every: int = ruled(200, lo=1)
    log_every: int = ruled(10, lo=1)
    threads: int | None = ruled(None, lo=1, hi=1024)  # torch CPU threads; null: torch's default


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


def _field_rules() -> dict[str, Rule]:
    """``"section.key"`` -> the field's `Rule` (from `ruled`), for every field of every config section."""
    cfg = TrainConfig()
    return {f"{sec.name}.{f.name}": f.metadata.get("rule", NO_RULE)
            for sec in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, sec.name))
            for f in dataclasses.fields(getattr(cfg, sec.name))}  # fmt: skip


#: The checks of every field of the config sections beyond its annotation, kept beside each field (`ruled`).
FIELD_RULES: dict[str, Rule] = _field_rules()


class _Origins:
    """Where each key of a config came from (the file of the ``base:`` chain or the override that set it last),
    so that an error names it: ``<file>: <key>: <problem>``, ``<key>: <problem> (override '<item>')``."""

    MAX_DEPTH = 8  # configs nest 3 levels; YAML aliases can make a mapping that contains itself

    def __init__(self, default: str) -> None:
        self.default = default
        self.keys: dict[tuple[str, ...], str] = {}

    def record(self, values: Any, label: str, prefix: tuple[str, ...] = ()) -> None:
        """Every key of `values` (nested mappings too) was set by `label`: a file or an override."""
        if not isinstance(values, dict) or len(prefix) >= self.MAX_DEPTH:
            return
        for k, v in values.items():
            path = (*prefix, str(k))
            self.keys[path] = label  # a later file or override replaces an earlier one
            self.record(v, label, path)

    def of(self, path: tuple[str, ...]) -> str:
        """The label of the last setter of `path`, else of the nearest section above it (a list item's)."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.keys:
                return self.keys[path[:n]]
        return self.default

    def error(self, path: tuple[str, ...], message: str) -> InputError:
        """An InputError for `message` (which starts with the key, if any) with where `path` came from."""
        label = self.of(path)
        if label.startswith("override "):
            return InputError(f"{message} ({label})")
        return InputError(f"{label}: {message}")


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _check_field(value: Any, tp: Any, path: tuple[str, ...], origins: _Origins) -> Any:
    rule = FIELD_RULES.get(_dotted(path), NO_RULE)
    if not accepts(value, tp, rule):
        raise origins.error(path, f"{_dotted(path)}: must be {describe(tp, rule)}, got {brief(value)}")
    return value


def _merge(base: dict, override: dict) -> dict:
    """`override` on top of `base`, section by section; ``{"0": {...}}`` on a list edits that list item."""
    out = dict(base)
    for k, v in override.items():
        old = out.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            out[k] = _merge(old, v)
        elif isinstance(v, dict) and isinstance(old, list) and v and all(re.fullmatch("[0-9]+", str(i)) for i in v):
            items = list(old)
            for i, sub in v.items():
                i = int(i)
                if i >= len(items):
                    raise InputError(f"{k}.{i}: {k} has only {len(items)} item(s)")
                items[i] = _merge(items[i], sub) if isinstance(sub, dict) and isinstance(items[i], dict) else sub
            out[k] = items
        else:
            out[k] = v
    return out


#: Longest ``base:`` chain followed (a longer one is almost surely a mistake).
MAX_BASE_DEPTH = 64


def _safe_yaml(text: str, invalid: str, too_deep: str, one_line: bool = False) -> Any:
    """`yaml.safe_load(text)`; an `InputError` "<invalid>: <YAML's reason>" or `too_deep` instead of YAML's own
    errors (`one_line`: the reason on one line)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        reason = " ".join(str(e).split()) if one_line else str(e)
        raise InputError(f"{invalid}: {reason}") from None
    except RecursionError:
        raise InputError(too_deep) from None


def _read_yaml(path: Path, origins: _Origins, seen: tuple[Path, ...] = ()) -> dict:
    """The values of config file `path` merged over its ``base:`` chain; `origins` records which file set what."""
    try:
        path = path.resolve()
    except (OSError, RuntimeError, ValueError) as e:  # RuntimeError: a symlink loop; ValueError: a NUL byte
        raise InputError(f"config file {str(path)!r}: cannot resolve the path: {e}") from None
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise InputError(f"{path}: circular `base:` chain ({chain})")
    if len(seen) >= MAX_BASE_DEPTH:
        raise InputError(f"{path}: `base:` chain longer than {MAX_BASE_DEPTH} files (from {seen[0]})")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}" + (f" (the `base:` of {seen[-1]})" if seen else ""))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    raw = _safe_yaml(text, f"{path}: not valid YAML", f"{path}: not a config: YAML nested too deeply")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    base = raw.pop("base", None)
    if base is not None and (not isinstance(base, str) or not base or "\0" in base):
        raise InputError(f"{path}: base: must be the path of another config file, got {brief(base)}")
    values = {} if base is None else _read_yaml(path.parent / base, origins, (*seen, path))
    origins.record(raw, str(path))
    try:
        return _merge(values, raw)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None


def _build(cls, values: Any, origins: _Origins, path: tuple[str, ...] = ()):
    """An instance of config dataclass `cls` from `values`, every value checked (module docstring)."""
    if not isinstance(values, dict):
        what = _dotted(path) + ": " if path else ""
        raise origins.error(path, f"{what}expected a section (mapping), got {brief(values)}")
    if cls is TrainConfig and "regularizer" in values:
        values = dict(values)
        try:
            legacy = legacy_regularizers(values.pop("regularizer"))
        except ValueError as e:
            raise origins.error(("regularizer",), str(e)) from None
        if "regularizers" in values:
            raise origins.error(("regularizers",), "give `regularizers` (a list) or the old `regularizer` section, "
                                                   "not both")  # fmt: skip
        values["regularizers"] = legacy
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted({k for k in values if k not in names}, key=str)
    if unknown:
        section = _dotted(path) or "config"
        shown = ", ".join(k if isinstance(k, str) and len(k) <= 80 else brief(k) for k in unknown)
        message = f"{section}: unknown key(s) {shown}; known: {', '.join(sorted(names))}"
        raise origins.error((*path, str(unknown[0])), message)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in values.items():
        f, at = names[k], (*path, k)
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            kwargs[k] = _build(sub, v, origins, at)
        elif k == "regularizers":
            try:
                kwargs[k] = check_regularizers(v, "regularizers")
            except ValueError as e:
                raise origins.error(at, str(e)) from None
        else:
            kwargs[k] = _check_field(v, hints[k], at, origins)
    out = cls(**kwargs)
    if cls is ValConfig:
        _check_val(out, path, origins)
    if cls is DataConfig and isinstance(out.root, list) and out.kind != "images":
        at = (*path, "root")
        raise origins.error(at, f"{_dotted(at)}: a list of folders is read by data.kind=images only; "
                                f"data.kind={out.kind} takes one path, got {brief(out.root)}")  # fmt: skip
    if cls is TrainConfig:
        _check_head_and_betas(out, origins)
    return out


def _check_head_and_betas(cfg: TrainConfig, origins: _Origins) -> None:
    """``beta: auto`` keeps a regulariser's gradient at a ratio of the identity loss's: without an identity loss
    (``head.name: none``) there is nothing to keep it to."""
    if cfg.head.name != "none":
        return
    for i, item in enumerate(cfg.regularizers):
        beta = item.get("beta")
        if isinstance(beta, str) and beta.partition(":")[0] == "auto":
            at = ("regularizers", str(i), "beta")
            message = (f"regularizers[{i}].beta: {beta!r} keeps the term's gradient at a ratio of the identity "
                       "loss's; head.name=none trains without one: give beta a number")
            raise origins.error(at, message)


def _check_val(val: ValConfig, path: tuple[str, ...], origins: _Origins) -> None:
    """Synthetic validation pairs: 10 folds of disjoint identities, each fold with two identities of two
    images or more (`explainface.readers.lfw_pairs.make_pairs`)."""
    if val.pairs != "synthetic":
        return
    need = {"heldout_identities": 2 * PAIR_FOLDS, "heldout_per_identity": 2}
    for key, least in need.items():
        if getattr(val, key) < least:
            at = (*path, key)
            raise origins.error(at, f"{_dotted(at)}: val.pairs=synthetic needs at least {least}, got "
                                    f"{getattr(val, key)}")  # fmt: skip


def parse_overrides(items: list[str]) -> dict:
    """``["optim.lr=0.01", "regularizers.0.beta=auto"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"override {brief(item)} must be a string section.key=value")
        key, sep, value = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or not all(p.strip() for p in parts):
            raise InputError(f"override {item!r} must look like section.key=value")
        parsed = _safe_yaml(value, f"override {item!r}: the value is not valid YAML",
                            f"override {item!r}: the value is YAML nested too deeply", one_line=True)  # fmt: skip
        node = out
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"override {item!r}: {'.'.join(parts[: i + 1])} is already set to a value")
        node[parts[-1]] = parsed
    return out


def load_config(path: str | Path | TrainConfig | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The config of `path` (following `base:`; or a `TrainConfig` itself), with dotted `overrides` applied on
    top, every value checked.

    Raises `InputError` (a ValueError) naming the key and the file or override it came from, or
    `FileNotFoundError` for a missing config file."""
    if isinstance(path, TrainConfig):
        origins, values = _Origins("config"), path.to_dict()
    else:
        origins = _Origins(str(path) if path is not None else "config")
        values = _read_yaml(Path(path), origins) if path is not None else {}
    for item in overrides or []:  # one at a time, in order: `regularizers=[...]` then `regularizers.0.beta=...`
        parsed = parse_overrides([item])
        try:
            values = _merge(values, parsed)
        except ValueError as e:
            raise InputError(f"{e} (override {item!r})") from None
        origins.record(parsed, f"override {item!r}")
    return _build(TrainConfig, values, origins)


def config_from_dict(values: dict, where: str = "checkpoint config") -> TrainConfig:
    """Rebuild (and check) a config saved with `TrainConfig.to_dict` (e.g. from a checkpoint); `where` names it in
    error messages."""
    return _build(TrainConfig, values, _Origins(where))


def check_config(cfg: TrainConfig, where: str = "config") -> TrainConfig:
    """Check a config built or edited in code as `load_config` checks a file; returns `cfg` itself."""
    config_from_dict(cfg.to_dict(), where)
    return cfg


def check_device(name: Any, where: str = "run.device") -> str:
    """The device `name` stands for on this machine (``auto`` -> ``cuda`` or ``cpu``), or an `InputError` naming
    `where` when it is not a device name or this PyTorch build or machine does not have it."""
    import torch

    if not isinstance(name, str) or not _DEVICE_RE.fullmatch(name):
        raise InputError(f"{where}={brief(name)} is not a device ({DEVICE_NAMES})")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    build = f"torch {torch.__version__}"
    if name.startswith("cuda"):
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise InputError(f"{where}={name}: CUDA is not available in this PyTorch build ({build}); use cpu")
        if not torch.cuda.is_available():
            raise InputError(f"{where}={name}: no CUDA device is visible ({build}, CUDA {torch.version.cuda}); "
                             "check the driver and CUDA_VISIBLE_DEVICES, or use cpu")  # fmt: skip
        count = torch.cuda.device_count()
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise InputError(f"{where}={name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"{where}=mps: Apple's MPS is not available here ({build}); use cpu")
    return name
