"""Argument types for the command line: a bad option value is an argparse usage error naming the option
(``explainface templates: error: argument --show: must be an integer >= 1, got 0``), before any work starts.
The library functions check the same ranges for notebook callers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

__all__ = ["PICTURE_SUFFIXES", "check_picture_path", "float_in", "int_at_least", "picture_path"]

#: The suffixes pictures can be written with (OpenCV and Matplotlib both write these).
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer >= `low` (``int_at_least(1)`` for counts and sizes)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def float_in(low: float, high: float = math.inf, low_open: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high] (``(low, high]`` with `low_open`)."""
    bracket = "(" if low_open else "["

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or value > high:
            raise argparse.ArgumentTypeError(f"must be a number in {bracket}{low:g}, {high:g}], got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def check_picture_path(path: str | Path) -> Path:
    """`path` as a Path; ValueError naming it unless it ends in .png, .jpg or .jpeg (case-insensitive)."""
    if Path(path).suffix.lower() not in PICTURE_SUFFIXES:
        raise ValueError(f"{path}: a picture's file name must end in {', '.join(PICTURE_SUFFIXES)}")
    return Path(path)


def picture_path(text: str) -> str:
    """argparse type: a path to write a picture to (`check_picture_path`)."""
    try:
        check_picture_path(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text
