"""What a config value may be: the types of its field's annotation (a bool is not an int, an int is a fine float,
numbers are finite, strings are non-empty), and the `Rule` kept beside the field (`ruled`: a range for numbers,
fixed choices or a pattern for strings). `accepts` checks a value, `describe` says in words what is accepted.
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
from typing import Any, Literal, Union

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def brief(value: Any) -> str:
    """A short repr for messages: a huge (or self-referencing, YAML aliases) value never makes a huge message."""
    return _SHORT.repr(value)


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


def ruled(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None, **rule: Any) -> Any:
    """A config field's default with its `Rule` beside it (the field's metadata): what it accepts beyond the
    types of its annotation."""
    meta = {"rule": Rule(**rule)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


NO_RULE = Rule()


def is_number(value: Any) -> bool:
    """An int or a finite float (not a bool), one that float() can take (an int of 400 digits cannot)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def accepts(value: Any, tp: Any, rule: Rule = NO_RULE) -> bool:
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
        return is_number(value) and rule.in_range(value)
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


def describe(tp: Any, rule: Rule = NO_RULE) -> str:
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
