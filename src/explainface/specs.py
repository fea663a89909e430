"""Named things with options on a command line: ``"name:key=value,key=value"`` (experiment methods, attribution
methods). One parser, so every list of them reads the same way."""

from __future__ import annotations

from typing import Any

import yaml


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ecloss:normalize=max,temperature=0.05"`` -> ("ecloss", {"normalize": "max", "temperature": 0.05}); values
    are read as YAML scalars (numbers, booleans, strings)."""
    name, _, rest = spec.strip().partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{spec!r}: option {item!r} must look like key=value")
        options[key.strip()] = yaml.safe_load(value)
    return name, options


def split_specs(text: str, what: str = "methods") -> list[str]:
    """``"softmax,ecloss:normalize=max,marginal=channels,ecloss"`` -> the three specs: a comma-separated piece with
    '=' before any ':' (``marginal=channels``, ``beta=auto:1``) is one more option of the spec before it."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if "=" in piece.partition(":")[0] and specs:  # "key=value" (a value may hold ':', e.g. beta=auto:1)
            specs[-1] += ("," if ":" in specs[-1] else ":") + piece
        else:
            specs.append(piece)
    if not specs:
        raise ValueError(f"no {what} given")
    if len(set(specs)) != len(specs):
        raise ValueError(f"a {what[:-1] if what.endswith('s') else what} is listed twice in {text!r}")
    return specs
