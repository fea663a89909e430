"""Methods: named training recipes that the experiment compares (``softmax``, ``ecloss``, later the baselines).

A method edits a copy of the experiment's base `TrainConfig` (in practice its ``regularizers`` list), so every
method of a seed trains the same network on the same data, order, initialisation and number of steps. A method
is named on the command line with options, ``ecloss:normalize=max,marginal=channels`` (values parsed as YAML);
the options are checked when the method is parsed, before any training. A new method is one function::

    @register_method("mine", "what it is")
    def mine(cfg: TrainConfig, **options) -> None:
        cfg.regularizers = [{"name": "my_regularizer", "beta": options.pop("beta", 0.1), **options}]

and needs no change in the experiment code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from explainface.losses.fit import FIT_RECIPE
from explainface.specs import parse_spec, split_specs
from explainface.training.config import TrainConfig, config_from_dict


@dataclass(frozen=True)
class Method:
    name: str
    apply: Callable[..., None]  # (cfg, **options) -> None, edits cfg in place
    description: str
    steps: int | None = None  # a method that fixes its own training steps (``original``: 0), else the experiment's
    reference: bool = False  # a baseline: the first one listed is the reference of the paired tests


_METHODS: dict[str, Method] = {}


def register_method(name: str, description: str = "", steps: int | None = None,
                    reference: bool = False) -> Callable[[Callable[..., None]], Callable[..., None]]:  # fmt: skip
    """Decorator: make `fn(cfg, **options)` available as method `name`. `steps`: the number of training steps the
    method always takes (``original``: 0, the network as it is), whatever the experiment's; `reference`: a baseline
    (``softmax``, ``original``): the first one listed is the reference of the experiment's paired tests."""
    if not name or any(c in name for c in ":,=/ "):
        raise ValueError(f"method name {name!r} must be non-empty without ':', ',', '=', '/' or spaces")

    def add(fn: Callable[..., None]) -> Callable[..., None]:
        old = _METHODS.get(name)
        if old is not None and old.apply is not fn:
            raise ValueError(f"a method named {name!r} is already registered")
        _METHODS[name] = Method(name, fn, description or (fn.__doc__ or "").strip().split("\n")[0], steps, reference)
        return fn

    return add


def list_methods() -> dict[str, str]:
    """Registered method names and their one-line descriptions."""
    return {name: m.description for name, m in sorted(_METHODS.items())}


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ecloss:normalize=max,temperature=0.05"`` -> ("ecloss", {"normalize": "max", "temperature": 0.05})."""
    try:
        name, options = parse_spec(spec)
    except ValueError as e:
        raise ValueError(f"method {e}") from None
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r} in {spec!r}; registered: {', '.join(sorted(_METHODS))}")
    return name, options


def split_methods(text: str) -> list[str]:
    """``"softmax,ecloss:normalize=max,marginal=channels,ecloss"`` -> the three method specs (`specs.split_specs`)."""
    return split_specs(text, "methods")


def method_config(spec: str, base: TrainConfig) -> TrainConfig:
    """A copy of `base` with method `spec` applied, re-validated (an unknown option is a ValueError naming it)."""
    name, options = parse_method(spec)
    cfg = copy.deepcopy(base)
    try:
        _METHODS[name].apply(cfg, **options)
        return config_from_dict(cfg.to_dict(), "config")
    except (TypeError, ValueError) as e:
        raise ValueError(f"method {spec!r}: {e}") from None


def method_steps(spec: str) -> int | None:
    """The training steps method `spec` fixes for itself (``original``: 0), or None: the experiment's."""
    return _METHODS[parse_method(spec)[0]].steps


def reference_method(specs: list[str]) -> str:
    """The reference of the paired tests among `specs`: the first baseline listed (``softmax``, ``original``), else
    the first method."""
    return next((s for s in specs if _METHODS[parse_method(s)[0]].reference), specs[0])


def slug(spec: str) -> str:
    """A folder name for a method spec: ``ecloss:normalize=max,marginal=channels`` ->
    ``ecloss__normalize=max_marginal=channels``."""
    return spec.replace(":", "__").replace(",", "_").replace("/", "-")


# ---- built-in methods ----------------------------------------------------------------------------------------------


@register_method("softmax", "the ordinary network: identity loss only (the paper's baseline)", reference=True)
def softmax(cfg: TrainConfig, **options: Any) -> None:
    if options:
        raise ValueError(f"softmax takes no options, got {', '.join(options)}")
    cfg.regularizers = []


@register_method("ecloss", "identity loss + beta * ECLoss (paper mode by default; options: ECLoss's and beta)")
def ecloss(cfg: TrainConfig, **options: Any) -> None:
    beta = options.pop("beta", "auto")
    cfg.regularizers = [{"name": "ecloss", "beta": beta, **options}]


#: The ECLoss-fit recipe's defaults (docs/ecloss_diagnosis.md has the measurements behind each); defined beside the
#: loss (`losses.fit.FIT_RECIPE`) so that the retrofit (`training.retrofit`) uses the same map terms.
FIT_DEFAULTS: dict[str, Any] = FIT_RECIPE


@register_method("ecloss-fit", "identity loss + beta * ECLoss-fit (template fit + channel diversity + "
                 "consistency) after a softmax warm-up; options: FitECLoss's, beta, start")  # fmt: skip
def ecloss_fit(cfg: TrainConfig, **options: Any) -> None:
    spec = {**FIT_DEFAULTS, **options}
    beta, start = spec.pop("beta"), spec.pop("start")
    cfg.regularizers = [{"name": "ecloss_fit", "beta": beta, "start": start, **spec}]


#: The method `recommended` resolves to (scripts that name `recommended` keep working when the recipe changes).
RECOMMENDED = "ecloss-fit"


@register_method("recommended", f"the project's recommended recipe (now: {RECOMMENDED} with its defaults)")
def recommended(cfg: TrainConfig, **options: Any) -> None:
    _METHODS[RECOMMENDED].apply(cfg, **options)


# ---- the seed baselines (docs/method.md §9) -------------------------------------------------------------------------


@register_method("yin", "Yin et al. 2019: spatial activation diversity + feature activation diversity with synthetic "
                 "occlusion and classification of the occluded faces (options: YinLoss's, beta)")  # fmt: skip
def yin(cfg: TrainConfig, **options: Any) -> None:
    beta = options.pop("beta", 1.0)  # YinLoss's defaults are Yin's weights relative to CE(clean) at beta 1
    cfg.regularizers = [{"name": "yin", "beta": beta, **options}]


#: A regulariser option ``run:<method>`` names the checkpoint of that method's run of the same seed
#: (resolved by the experiment, which trains it first).
RUN_REFERENCE = "run:"


@register_method("xcos", "xCos (Lin et al. 2021): identity loss + MSE of an xCos pair head to a frozen reference's "
                 "cosine (default reference: the experiment's softmax run of the same seed)")  # fmt: skip
def xcos(cfg: TrainConfig, **options: Any) -> None:
    beta = options.pop("beta", 1.0)
    reference = options.pop("reference", RUN_REFERENCE + "softmax")
    cfg.regularizers = [{"name": "xcos", "beta": beta, "reference": reference, **options}]


# ---- the retrofit of a pretrained network (`explainface.training.retrofit`) ------------------------------------------


@register_method("original", "the pretrained network as it is (model.name / model.weights): 0 training steps, "
                 "saved and evaluated like the others; a retrofit experiment's reference", steps=0,
                 reference=True)  # fmt: skip
def original(cfg: TrainConfig, **options: Any) -> None:
    from explainface.training.pretrained import original_identity_layers

    if options:
        raise ValueError(f"original takes no options, got {', '.join(options)}")
    cfg.regularizers = []
    cfg.head.name = "none"
    cfg.model.identity_layers = original_identity_layers(cfg.model)  # as the weights' authors ran it


@register_method("retrofit", "the pretrained network fine-tuned with ECLoss-fit's map terms + embedding preservation, "
                 "no identity loss (options: apply_retrofit's: beta, preserve, lr, identity_loss, form, "
                 "FitECLoss's)")  # fmt: skip
def retrofit(cfg: TrainConfig, **options: Any) -> None:
    from explainface.training.retrofit import apply_retrofit

    apply_retrofit(cfg, **options)


def run_references(cfg: TrainConfig) -> list[str]:
    """The methods whose runs `cfg` reads (regulariser options ``run:<method>``)."""
    return [v[len(RUN_REFERENCE) :] for item in cfg.regularizers for v in item.values()
            if isinstance(v, str) and v.startswith(RUN_REFERENCE)]  # fmt: skip


def resolve_run_references(cfg: TrainConfig, checkpoint_of: Callable[[str], str]) -> TrainConfig:
    """A copy of `cfg` whose ``run:<method>`` options are replaced by ``checkpoint_of(method)``."""
    cfg = copy.deepcopy(cfg)
    cfg.regularizers = [
        {k: checkpoint_of(v[len(RUN_REFERENCE) :]) if isinstance(v, str) and v.startswith(RUN_REFERENCE) else v
         for k, v in item.items()}
        for item in cfg.regularizers
    ]  # fmt: skip
    return cfg
