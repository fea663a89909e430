"""The ``regularizers:`` list of a config: each item ``{name: <registered>, beta: <float|auto|auto:rho>, start:
<step or fraction>, <option>: <value> ...}`` checked against the registered class (its options' types), and the
single ``regularizer:`` section of configs made before regularisers were pluggable read as such a list."""

from __future__ import annotations

import re
import typing
from typing import Any

from explainface.errors import InputError
from explainface.training.config_rules import accepts, brief, describe, is_number

#: beta of a regulariser that does not give one: the paper's initial value (eq. 7).
DEFAULT_BETA = 1e-5
#: The single-regulariser section of configs and checkpoints made before regularisers were pluggable.
LEGACY_REGULARIZER_KEYS = ("name", "k", "tau", "radius", "normalize", "temperature", "marginal", "beta")


#: Keys of a ``regularizers`` item that the trainer reads; every other key is a constructor option.
REGULARIZER_ITEM_KEYS = ("name", "beta", "start")


def regularizer_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The constructor options of one ``regularizers`` item: everything but ``name``, ``beta`` and ``start``."""
    return {k: v for k, v in spec.items() if k not in REGULARIZER_ITEM_KEYS}


def check_start(value: Any, where: str) -> int | float:
    """A regulariser's ``start``: a step (int >= 0) or a fraction of the run's steps (float in [0, 1))."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}.start: expected a step (int >= 0) or a fraction of the run in [0, 1), "
                         f"got {brief(value)}")  # fmt: skip
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{where}.start: a step must be >= 0, got {brief(value)}")
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
        raise InputError(f'{where}.beta: must be a number >= 0, "auto" or "auto:<rho>", got {brief(beta)}')
    try:
        controller = make_beta(beta)
        finite = all(is_number(getattr(controller, a, 0.0)) for a in ("value", "rho"))
    except (ValueError, OverflowError) as e:
        raise InputError(f"{where}: {e}") from None
    if not finite:
        raise InputError(f'{where}.beta: must be finite (a number >= 0, "auto" or "auto:<rho>"), got {brief(beta)}')


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
        raise InputError(f"{where}: expected a list of {{name: ..., beta: ..., <option>: ...}}, got {brief(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"{at}: expected a mapping with a `name`, got {brief(item)}")
        bad = [k for k in item if not isinstance(k, str)]
        if bad:
            raise InputError(f"{at}: option names must be strings, got {brief(bad[0])}")
        params = regularizer_options(item)
        check_regularizer_params(item["name"], params, at)
        types_ = _option_types(item["name"])
        for k, v in params.items():
            if k in types_ and not accepts(v, types_[k]):
                raise InputError(f"{at}.{k}: regularizer {item['name']!r} takes {describe(types_[k])}, "
                                 f"got {brief(v)}")  # fmt: skip
        beta = item.get("beta", DEFAULT_BETA)
        _check_beta(beta, at)
        start = check_start(item.get("start", 0), at)
        out.append({"name": item["name"], "beta": beta, **({"start": start} if start else {}), **params})
    return out


def legacy_regularizers(section: Any) -> list[dict[str, Any]]:
    """The old single ``regularizer:`` section (``name: none|ecloss`` plus ECLoss's options) as a list."""
    if not isinstance(section, dict):
        raise InputError(f"regularizer: expected a section (mapping), got {brief(section)}")
    unknown = sorted({k for k in section if k not in LEGACY_REGULARIZER_KEYS}, key=str)
    if unknown:
        raise InputError(f"regularizer: unknown key(s) {', '.join(brief(k) for k in unknown)}; known: "
                         f"{', '.join(LEGACY_REGULARIZER_KEYS)} (new configs use a `regularizers:` list)")  # fmt: skip
    name = section.get("name", "none")
    return [] if name in ("none", None) else [{**section, "name": name}]
