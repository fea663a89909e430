"""Training configuration: small YAML files that override a base, plus ``key=value`` overrides.

A config file may name a ``base:`` (a path relative to itself); its keys
override the base's, section by section (insightface style, without a global
mutable object). Command-line overrides use dotted keys, ``optim.lr=0.01``,
with values parsed as YAML (``epochs=3``, ``root=null``); a number picks a list
item (``regularizers.0.beta=auto``), and a whole list is YAML too
(``regularizers=[{name: ecloss, beta: auto}]``, ``regularizers=[]``).

Every value is checked when the config is loaded (`load_config`, `config_from_dict`): its type from the
dataclass annotation (a bool is not an int, an int is a fine float, numbers are finite) and its range or
choices from `FIELD_RULES` (model and head names from their registries). Unknown keys are errors, so a typo
never silently trains the wrong thing. A bad value is an `InputError` (a ValueError) that names the key and
where it came from: ``<file>: optim.lr: must be a number > 0, got 'abc'`` for a key set in a file (the file
of the ``base:`` chain that set it), ``optim.batch_size: must be ... (override 'optim.batch_size=-1')``
for one set by an override. Whether a device is available is checked where it is used (`check_device`):
a config saved on a GPU machine still loads on a CPU one.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from explainface.errors import InputError


@dataclass
class ModelConfig:
    name: str = "vgg16_bn"
    width: float = 1.0
    input_size: int = 224
    embedding_dim: int = 512
    dropout: float = 0.0
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
    kind: str = "synthetic"  # synthetic | folder | recordio | images
    root: str | list[str] | None = None  # images: one folder or a list of folders
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
    #: BatchNorm layers of the network in eval mode while training: running statistics frozen (their scale and
    #: shift still train). For fine-tuning a pretrained network (the retrofit): its statistics stay its own.
    freeze_bn: bool = False


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


# ------------------------------------------------------------------------------------------ value checks

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def _show(value: Any) -> str:
    """A short repr for messages: a huge (or self-referencing, YAML aliases) value never makes a huge message."""
    return _SHORT.repr(value)


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


@dataclass(frozen=True)
class Rule:
    """What a config field accepts beyond the types of its annotation: a range for its numbers (the items of a
    list of numbers too) and, for its strings, fixed `choices` (a tuple, or a function listing a registry) or a
    `pattern` described by `words`. A string is never empty nor holds a NUL character."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False
    choices: tuple[str, ...] | Callable[[], Iterable[str]] | None = None
    pattern: re.Pattern[str] | None = None
    words: str = ""

    def names(self) -> list[str] | None:
        if self.choices is None:
            return None
        return list(self.choices) if isinstance(self.choices, tuple) else list(self.choices())

    def in_range(self, x: int | float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)

    def range_text(self) -> str:
        lo, hi = (x if isinstance(x, int) or x is None else f"{x:g}" for x in (self.lo, self.hi))
        if lo is not None and hi is not None:
            return f" in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        if lo is not None:
            return f" {'>' if self.lo_open else '>='} {lo}"
        if hi is not None:
            return f" {'<' if self.hi_open else '<='} {hi}"
        return ""


#: The checks of every field of the config sections beyond its annotation (``"section.key"``); a field not
#: here takes any value of its annotated types.
FIELD_RULES: dict[str, Rule] = {
    "model.name": Rule(choices=_model_names),
    "model.width": Rule(lo=0, hi=8, lo_open=True),
    "model.input_size": Rule(lo=1),
    "model.embedding_dim": Rule(lo=1, hi=65536),  # face embeddings are 128 to 4096 wide; 1e11 fails to allocate
    "model.dropout": Rule(lo=0, hi=1, hi_open=True),
    "head.name": Rule(choices=_head_names),
    "head.s": Rule(lo=0, lo_open=True),
    "head.m": Rule(lo=0),
    "head.sample_rate": Rule(lo=0, hi=1, lo_open=True),
    "head.margin": Rule(choices=PARTIAL_FC_MARGINS),
    "data.kind": Rule(choices=DATA_KINDS),
    "data.identities": Rule(lo=1),
    "data.per_identity": Rule(lo=1),
    "data.difficulty": Rule(lo=0, hi=3, choices=_difficulties),
    "data.seed": Rule(lo=0),
    "data.workers": Rule(lo=0, hi=256),
    "val.heldout_identities": Rule(lo=1),
    "val.heldout_per_identity": Rule(lo=1),
    "val.every_steps": Rule(lo=0),
    "optim.lr": Rule(lo=0, lo_open=True),
    "optim.momentum": Rule(lo=0, hi=1, hi_open=True),
    "optim.weight_decay": Rule(lo=0),
    "optim.batch_size": Rule(lo=1),
    "optim.epochs": Rule(lo=1),
    "optim.max_steps": Rule(lo=0),  # 0: no training, the initial (e.g. pretrained) network saved as a checkpoint
    "optim.max_minutes": Rule(lo=0, lo_open=True),
    "optim.warmup_steps": Rule(lo=0),
    "optim.schedule": Rule(choices=SCHEDULES),
    "optim.milestones": Rule(lo=0, hi=1),
    "optim.gamma": Rule(lo=0, lo_open=True),
    "optim.grad_clip": Rule(lo=0, lo_open=True),
    # the trainer seeds torch generators with (seed * 7919 + rank) * 1_000_003 + step: < 2**64 for seeds < 2**31
    "run.seed": Rule(lo=0, hi=2**31, hi_open=True),
    "run.device": Rule(pattern=_DEVICE_RE, words=DEVICE_NAMES),
    "run.amp": Rule(choices=AMP_MODES),
    "run.channels_last": Rule(choices=("auto",)),
    "run.checkpoint_every": Rule(lo=1),
    "run.log_every": Rule(lo=1),
    "run.threads": Rule(lo=1, hi=1024),
}

_NO_RULE = Rule()


def _is_number(value: Any) -> bool:
    """An int or a finite float (not a bool), one that float() can take (an int of 400 digits cannot)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def accepts(value: Any, tp: Any, rule: Rule = _NO_RULE) -> bool:
    """Whether `value` (from YAML) is of the annotated type `tp` and satisfies `rule`. An annotation this
    checker does not know (a class of its own) accepts anything: whoever consumes the value checks it."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(accepts(value, arg, rule) for arg in typing.get_args(tp))
    if origin is Literal:
        return any(type(value) is type(arg) and value == arg for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool) and rule.in_range(value)
    if tp is float:
        return _is_number(value) and rule.in_range(value)
    if tp is str:
        if not isinstance(value, str) or not value or "\0" in value:
            return False
        names = rule.names()
        if names is not None:
            return value in names
        return rule.pattern is None or rule.pattern.fullmatch(value) is not None
    if origin in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(tp)
        item = args[0] if args else Any  # list[X], Sequence[X], tuple[X, ...]
        return isinstance(value, (list, tuple)) and all(accepts(v, item, rule) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True


def describe(tp: Any, rule: Rule = _NO_RULE) -> str:
    """What `accepts` takes, in words: ``an integer >= 1 or null``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = sorted(typing.get_args(tp), key=lambda a: a is type(None))  # null last
        return " or ".join(describe(arg, rule) for arg in args)
    if origin is Literal:
        return " or ".join(str(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer" + rule.range_text()
    if tp is float:
        return "a number" + rule.range_text()
    if tp is str:
        names = rule.names()
        if names is not None:
            return names[0] if len(names) == 1 else "one of " + ", ".join(names)
        return rule.words or "a non-empty string"
    if origin in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(tp)
        plural = {int: "integers", float: "numbers"}.get(args[0] if args else None)
        if plural:
            return f"a list of {plural}{rule.range_text()}"
        return f"a list (of {describe(args[0], rule)})" if args else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


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
    rule = FIELD_RULES.get(_dotted(path), _NO_RULE)
    if not accepts(value, tp, rule):
        raise origins.error(path, f"{_dotted(path)}: must be {describe(tp, rule)}, got {_show(value)}")
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


#: Keys of a ``regularizers`` item that the trainer reads; every other key is a constructor option.
REGULARIZER_ITEM_KEYS = ("name", "beta", "start")


def regularizer_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor options of one ``regularizers`` item: everything but ``name``, ``beta`` and ``start``."""
    return {k: v for k, v in spec.items() if k not in REGULARIZER_ITEM_KEYS}


def check_start(value: Any, where: str) -> int | float:
    """A regulariser's ``start``: a step (int >= 0) or a fraction of the run's steps (float in [0, 1))."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}.start: expected a step (int >= 0) or a fraction of the run in [0, 1), "
                         f"got {_show(value)}")  # fmt: skip
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{where}.start: a step must be >= 0, got {_show(value)}")
        return value
    if not 0 <= value < 1:
        raise InputError(f"{where}.start: a fraction of the run must be in [0, 1), got {value} (a step is an int)")
    return float(value)


def start_step(start: int | float, total_steps: int) -> int:
    """The first step at which a regulariser with this ``start`` is on."""
    return start if isinstance(start, int) else int(round(start * total_steps))


def _check_beta(beta: Any, where: str) -> None:
    """A regulariser's ``beta``: a number >= 0, "auto" or "auto:<rho>", all finite."""
    from explainface.losses.beta import make_beta

    if isinstance(beta, bool) or not isinstance(beta, (int, float, str)):
        raise InputError(f'{where}.beta: must be a number >= 0, "auto" or "auto:<rho>", got {_show(beta)}')
    try:
        controller = make_beta(beta)
        finite = all(_is_number(getattr(controller, a, 0.0)) for a in ("value", "rho"))
    except (ValueError, OverflowError) as e:
        raise InputError(f"{where}: {e}") from None
    if not finite:
        raise InputError(f'{where}.beta: must be finite (a number >= 0, "auto" or "auto:<rho>"), got {_show(beta)}')


def _option_types(name: str) -> dict[str, Any]:
    """The annotated types of regulariser `name`'s constructor options ({} where they cannot be resolved)."""
    from explainface.losses.registry import regularizer_class

    try:
        return typing.get_type_hints(regularizer_class(name).__init__)
    except Exception:  # an annotation naming something unimportable: the constructor checks
        return {}


def check_regularizers(value: Any, where: str = "regularizers") -> list[dict[str, Any]]:
    """Validate a ``regularizers`` list: registered names, known options of the annotated types; fill in ``beta``
    (default 1e-5). The options' ranges are the constructor's to check."""
    from explainface.losses.registry import check_regularizer_params

    if value is None:
        return []
    if isinstance(value, dict) and value and all(re.fullmatch("[0-9]+", str(k)) for k in value):
        raise InputError(f"{where}: there is no item {min(value, key=int)} to edit; give the whole list "
                         f"({where}=[{{name: ..., beta: ...}}])")  # fmt: skip
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise InputError(f"{where}: expected a list of {{name: ..., beta: ..., <option>: ...}}, got {_show(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"{at}: expected a mapping with a `name`, got {_show(item)}")
        bad = [k for k in item if not isinstance(k, str)]
        if bad:
            raise InputError(f"{at}: option names must be strings, got {_show(bad[0])}")
        params = regularizer_options(item)
        check_regularizer_params(item["name"], params, at)
        types_ = _option_types(item["name"])
        for k, v in params.items():
            if k in types_ and not accepts(v, types_[k]):
                raise InputError(f"{at}.{k}: regularizer {item['name']!r} takes {describe(types_[k])}, "
                                 f"got {_show(v)}")  # fmt: skip
        beta = item.get("beta", DEFAULT_BETA)
        _check_beta(beta, at)
        start = check_start(item.get("start", 0), at)
        out.append({"name": item["name"], "beta": beta, **({"start": start} if start else {}), **params})
    return out


def _legacy_regularizer(section: Any) -> list[dict[str, Any]]:
    """The old single ``regularizer:`` section (``name: none|ecloss`` plus ECLoss's options) as a list."""
    if not isinstance(section, dict):
        raise InputError(f"regularizer: expected a section (mapping), got {_show(section)}")
    unknown = sorted({k for k in section if k not in LEGACY_REGULARIZER_KEYS}, key=str)
    if unknown:
        raise InputError(f"regularizer: unknown key(s) {', '.join(_show(k) for k in unknown)}; known: "
                         f"{', '.join(LEGACY_REGULARIZER_KEYS)} (new configs use a `regularizers:` list)")  # fmt: skip
    name = section.get("name", "none")
    return [] if name in ("none", None) else [{**section, "name": name}]


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
        raise InputError(f"{path}: base: must be the path of another config file, got {_show(base)}")
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
        raise origins.error(path, f"{what}expected a section (mapping), got {_show(values)}")
    if cls is TrainConfig and "regularizer" in values:
        values = dict(values)
        try:
            legacy = _legacy_regularizer(values.pop("regularizer"))
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
        shown = ", ".join(k if isinstance(k, str) and len(k) <= 80 else _show(k) for k in unknown)
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
                                f"data.kind={out.kind} takes one path, got {_show(out.root)}")  # fmt: skip
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
            raise InputError(f"override {_show(item)} must be a string section.key=value")
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
        raise InputError(f"{where}={_show(name)} is not a device ({DEVICE_NAMES})")
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
