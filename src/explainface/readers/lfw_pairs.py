"""Verification pairs in the LFW `pairs.txt` format (docs/method.md §5.1), and LFW-style folds for any identity set.

The file: a header `"{folds}\\t{per_fold}"`, then per fold `per_fold` same-identity lines
`name\\ti\\tj` followed by `per_fold` different-identity lines `name1\\ti\\tname2\\tj`.
Image indices are 1-based, as in LFW (`name/name_0001.jpg` is index 1).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class LfwPair:
    """One line of an LFW `pairs.txt`: two images named by identity and 1-based image index, `same` whether they
    share the identity, `fold` from the line's position. The file's record only: the pipeline's pair type is
    `explainface.readers.pairs.PairList` (`pairs_from_lfw` builds one from these)."""

    name_a: str
    index_a: int
    name_b: str
    index_b: int
    same: bool
    fold: int

    def to_line(self) -> str:
        """The pair as one `pairs.txt` line (three fields when same, four when different)."""
        if self.same:
            return f"{self.name_a}\t{self.index_a}\t{self.index_b}"
        return f"{self.name_a}\t{self.index_a}\t{self.name_b}\t{self.index_b}"


def write_lfw_pairs(
    path: str | os.PathLike, pairs: Sequence[LfwPair], folds: int | None = None, per_fold: int | None = None
) -> Path:
    """Write pairs as an LFW `pairs.txt`: per fold, `per_fold` same pairs then `per_fold` different pairs.

    `folds` and `per_fold` default to what `pairs` holds; every fold must have exactly `per_fold` of each kind.
    """
    folds = folds if folds is not None else (max(p.fold for p in pairs) + 1 if pairs else 0)
    by_fold: list[tuple[list[LfwPair], list[LfwPair]]] = [([], []) for _ in range(folds)]
    for p in pairs:
        if not 0 <= p.fold < folds:
            raise ValueError(f"pair {p} has fold {p.fold}, outside 0..{folds - 1}")
        by_fold[p.fold][0 if p.same else 1].append(p)
    if per_fold is None:
        per_fold = len(by_fold[0][0]) if folds else 0
    lines = [f"{folds}\t{per_fold}"]
    for f, (same, diff) in enumerate(by_fold):
        if len(same) != per_fold or len(diff) != per_fold:
            raise ValueError(f"fold {f} has {len(same)} same and {len(diff)} different pairs, expected {per_fold} each")
        lines += [p.to_line() for p in same] + [p.to_line() for p in diff]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_text(path: Path, what: str) -> str:
    """The file as text: UTF-8 with or without a byte-order mark; `InputError` naming the file when it is not."""
    from explainface.errors import InputError

    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: {what} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_lfw_pairs(path: str | os.PathLike) -> list[LfwPair]:
    """Read an LFW `pairs.txt`; each pair's fold comes from its position (`2 * per_fold` lines per fold).

    The header is `folds per_fold` (or a single count, read as one fold). UTF-8 with or without a byte-order
    mark. Raises `ValueError` naming the file and line number for malformed lines, a line count that does not
    match the header, or bytes that are not UTF-8.
    """
    path = Path(path)
    text = read_text(path, "pairs file")
    numbered = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not numbered:
        raise ValueError(f"{path}: empty pairs file")
    n, header = numbered[0]
    try:
        counts = [int(v) for v in header]
    except ValueError:
        counts = []
    if len(counts) == 2:
        folds, per_fold = counts
    elif len(counts) == 1:  # pairsDevTrain.txt / pairsDevTest.txt: one fold of `n` same + `n` different
        folds, per_fold = 1, counts[0]
    else:
        shown = " ".join(header)
        shown = shown if len(shown) <= 80 else shown[:80] + "..."
        raise ValueError(f"{path}:{n}: expected a header 'folds<TAB>pairs_per_fold', got {shown!r}")
    if folds < 0 or per_fold < 0:
        raise ValueError(f"{path}:{n}: negative count in header")

    block = 2 * per_fold
    pairs = []
    for k, (n, fields) in enumerate(numbered[1:]):
        try:
            if len(fields) == 3:
                name_a, name_b, i, j = fields[0], fields[0], int(fields[1]), int(fields[2])
            elif len(fields) == 4:
                name_a, i, name_b, j = fields[0], int(fields[1]), fields[2], int(fields[3])
            else:
                raise ValueError(f"expected 3 fields (name i j) or 4 (name1 i name2 j), got {len(fields)}")
        except ValueError as e:
            shown = " ".join(fields)
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            raise ValueError(f"{path}:{n}: bad pair line {shown!r}: {str(e)[:200]}") from None
        if i < 1 or j < 1:
            raise ValueError(f"{path}:{n}: image indices are 1-based, got {i} and {j}")
        pairs.append(LfwPair(name_a, i, name_b, j, same=len(fields) == 3, fold=k // block if block else 0))
    if len(pairs) != folds * block:
        raise ValueError(
            f"{path}: header says {folds} folds x {per_fold} same + {per_fold} different pairs "
            f"({folds * block} lines) but the file has {len(pairs)} pair lines"
        )
    return pairs


def make_pairs(
    images_per_identity: dict[str, int], folds: int = 10, per_fold: int = 300, seed: int = 0
) -> list[LfwPair]:
    """Build LFW View 2-style folds: identities split into `folds` disjoint groups, each fold with
    `per_fold` same pairs (two distinct images of one identity) and `per_fold` different pairs
    (images of two identities of that fold), no pair twice.

    If some fold cannot supply `per_fold` of each, `per_fold` is reduced for all folds to the largest
    feasible number, with a warning; `ValueError` if not even one pair of each kind per fold is possible.
    Deterministic for a seed. Pairs come out in file order: per fold, sorted same pairs then sorted
    different pairs.
    """
    if folds < 1 or per_fold < 1:
        raise ValueError(f"folds and per_fold must be >= 1, got {folds} and {per_fold}")
    counts = {str(name): int(n) for name, n in images_per_identity.items() if int(n) > 0}
    if len(counts) < folds:
        raise ValueError(f"{len(counts)} identities with images cannot fill {folds} disjoint folds")
    rng = np.random.default_rng(seed)
    groups = _split_identities(counts, folds, rng)

    capacity = []
    for group in groups:
        sizes = [counts[name] for name in group]
        same_cap = sum(math.comb(n, 2) for n in sizes)
        diff_cap = (sum(sizes) ** 2 - sum(n * n for n in sizes)) // 2
        capacity.append(min(same_cap, diff_cap))
    feasible = min(capacity)
    if feasible < 1:
        raise ValueError(
            f"cannot make even one same and one different pair in every one of {folds} folds from "
            f"{len(counts)} identities (a fold needs an identity with >= 2 images and >= 2 identities)"
        )
    if feasible < per_fold:
        warnings.warn(
            f"{len(counts)} identities cannot supply {per_fold} same and {per_fold} different pairs in each of "
            f"{folds} folds; using {feasible} per fold",
            UserWarning,
            stacklevel=2,
        )
        per_fold = feasible

    pairs: list[LfwPair] = []
    for f, group in enumerate(groups):
        sizes = {name: counts[name] for name in group}
        same = _sample_pairs(rng, per_fold, *_same_candidates(sizes))
        diff = _sample_pairs(rng, per_fold, *_diff_candidates(sizes))
        pairs += [LfwPair(a, i, b, j, True, f) for a, i, b, j in sorted(same)]
        pairs += [LfwPair(a, i, b, j, False, f) for a, i, b, j in sorted(diff)]
    return pairs


Key = tuple[str, int, str, int]


def _split_identities(counts: dict[str, int], folds: int, rng: np.random.Generator) -> list[list[str]]:
    """Shuffle, then deal identities to folds in snake order by image count, so folds get similar capacity."""
    names = sorted(counts)
    names = [names[i] for i in rng.permutation(len(names))]
    names.sort(key=lambda name: -counts[name])  # stable: random order among equal counts
    groups: list[list[str]] = [[] for _ in range(folds)]
    for k, name in enumerate(names):
        lap, pos = divmod(k, folds)
        groups[pos if lap % 2 == 0 else folds - 1 - pos].append(name)
    return groups


def _same_candidates(
    sizes: dict[str, int],
) -> tuple[int, Callable[[], list[Key]], Callable[[np.random.Generator], Key]]:
    names = [name for name, n in sizes.items() if n >= 2]
    weights = np.array([math.comb(sizes[name], 2) for name in names], dtype=np.float64)

    def enumerate_all() -> list[Key]:
        return [(a, i, a, j) for a in names for i, j in combinations(range(1, sizes[a] + 1), 2)]

    def draw(rng: np.random.Generator) -> Key:  # uniform over all same pairs
        a = names[rng.choice(len(names), p=weights / weights.sum())]
        i, j = sorted(rng.choice(sizes[a], 2, replace=False) + 1)
        return a, int(i), a, int(j)

    return int(weights.sum()), enumerate_all, draw


def _diff_candidates(
    sizes: dict[str, int],
) -> tuple[int, Callable[[], list[Key]], Callable[[np.random.Generator], Key]]:
    names = sorted(sizes)
    images = [(name, k) for name in names for k in range(1, sizes[name] + 1)]
    total = len(images)

    def enumerate_all() -> list[Key]:
        return [(a, i, b, j) for (a, i), (b, j) in combinations(images, 2) if a != b]

    def draw(rng: np.random.Generator) -> Key:  # uniform over all different pairs (rejection on same identity)
        while True:
            (a, i), (b, j) = images[rng.integers(total)], images[rng.integers(total)]
            if a != b:
                return (a, i, b, j) if (a, i) < (b, j) else (b, j, a, i)

    capacity = (total**2 - sum(n * n for n in sizes.values())) // 2
    return capacity, enumerate_all, draw


def _sample_pairs(
    rng: np.random.Generator,
    k: int,
    capacity: int,
    enumerate_all: Callable[[], list[Key]],
    draw: Callable[[np.random.Generator], Key],
) -> set[Key]:
    """`k` distinct candidates uniformly at random: enumerate when the candidate set is small or nearly
    used up, otherwise draw with rejection of repeats (cheap when k is well below the capacity)."""
    if capacity <= 50_000 or 4 * k > capacity:
        candidates = enumerate_all()
        return {candidates[i] for i in rng.choice(len(candidates), k, replace=False)}
    chosen: set[Key] = set()
    while len(chosen) < k:
        chosen.add(draw(rng))
    return chosen
