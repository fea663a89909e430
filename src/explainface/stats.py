"""Statistics over seeds: mean and standard error, and the paired difference of two methods with a paired t-test.

Pure functions, numbers in, numbers out. A paired test uses the seeds both methods finished; with fewer than
two pairs, or differences that are all equal (no spread to test against), the p-value is NaN: nothing is
claimed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _finite(values: Sequence[float | None]) -> np.ndarray:
    x = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return x[np.isfinite(x)]


def mean_se(values: Sequence[float | None]) -> tuple[float, float, int]:
    """(mean, standard error of the mean = sample s.d. / sqrt(n), n) over the finite values; se is NaN for n < 2."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return float(x.mean()), se, n


def paired_test(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, float]:
    """Paired difference a - b over the positions where both are finite: mean, its standard error, the t
    statistic, the two-sided p-value of a paired t-test (n - 1 degrees of freedom) and n."""
    from scipy.stats import t as student_t

    x = np.array([np.nan if v is None else float(v) for v in a], dtype=np.float64)
    y = np.array([np.nan if v is None else float(v) for v in b], dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values must have one length, got {len(x)} and {len(y)}")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    n = len(d)
    out = {"diff": math.nan, "se": math.nan, "t": math.nan, "p_value": math.nan, "n": n}
    if n == 0:
        return out
    out["diff"] = float(d.mean())
    if n < 2:
        return out
    se = float(d.std(ddof=1) / math.sqrt(n))
    out["se"] = se
    if se > 0:
        t = out["diff"] / se
        out["t"] = t
        out["p_value"] = float(2 * student_t.sf(abs(t), n - 1))
    return out
