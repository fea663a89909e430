"""Every metric the project reports, defined once: its key (in verification.json, explainability.json and an
experiment's results.json), its label, unit, how many decimals, which direction is better, the key of its spread
and the paper's table it belongs to (as torchmetrics keeps ``higher_is_better`` on the metric).

The experiment's tables (`experiments.tables`), the HTML report (`report.html`), the demo's printed table
(`cli.demo`) and the results.json documentation (`metrics_markdown`, docs/metrics.md) all read this table, so a
metric is shown the same way everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HIGHER, LOWER, NEARER_ONE = "higher", "lower", "nearer 1"
#: How each unit shows a value: percent of a fraction, a plain number, or a whole count.
UNITS = ("percent", "number", "count")
DASH = "\u2014"
MINUS = "\u2212"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # short, for table rows: "PE (part explainability)"
    title: str  # long, for table captions
    source: str  # "verification" or "explainability": the result file that holds it
    unit: str  # one of UNITS; "percent": a fraction in [0, 1] shown as %
    digits: int  # decimals shown (of the percentage for "percent")
    better: str | None  # HIGHER, LOWER, NEARER_ONE, or None: no better side
    spread: str | None = None  # the key of its spread (a standard deviation or error), if any
    spread_name: str = ""  # what the spread is
    paper_table: str = ""  # the paper's table (Lin et al.), "" for ours
    meaning: str = ""  # one sentence for the documentation

    def score(self, x: float) -> float:
        """`x` on a scale where larger is better (NaN when the metric has no better side)."""
        if self.better == HIGHER:
            return x
        if self.better == LOWER:
            return -x
        if self.better == NEARER_ONE:
            return -abs(x - 1)
        return math.nan

    def format(self, x: float | None) -> str:
        """The value in its unit (a dash when missing or not finite)."""
        if x is None or not math.isfinite(x):
            return DASH
        if self.unit == "percent":
            return f"{100 * x:.{self.digits}f}%"
        if self.unit == "count" and self.digits == 0:
            return f"{x:,.0f}"
        return f"{x:.{self.digits}f}"

    def format_spread(self, s: float | None) -> str:
        """A spread in the value's unit, without the % sign (percentage points for percents)."""
        return self.format(s).rstrip("%")

    def format_delta(self, d: float | None) -> str:
        """A difference of two values, signed (percentage points for percents)."""
        if d is None or not math.isfinite(d):
            return DASH
        sign = "+" if d >= 0 else MINUS
        return sign + self.format_spread(abs(d)) + (" pp" if self.unit == "percent" else "")

    def with_spread(self, x: float | None, s: float | None) -> str:
        """"value ± spread" (the value alone when the spread is missing)."""
        text = self.format(x)
        if s is not None and math.isfinite(s) and text != DASH:
            text += " \u00b1 " + self.format_spread(s)
        return text


_V, _E = "verification", "explainability"
METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("accuracy_mean", "Verification accuracy", "Verification accuracy (10-fold)", _V, "percent", 2, HIGHER,
               "accuracy_std", "standard deviation over the 10 folds", "Table 3",
               "share of pairs classified right at the threshold chosen on the other nine folds"),
        Metric("auc", "AUC", "Area under the ROC curve", _V, "number", 4, HIGHER,
               meaning="area under the ROC curve of the pair scores"),
        Metric("eer", "EER", "Equal error rate", _V, "percent", 2, LOWER,
               meaning="the error rate where false accepts equal false rejects"),
        Metric("pe_mean", "PE (part explainability)", "Part explainability (PE)", _E, "number", 4, HIGHER, "pe_se",
               "standard error over the draws", "Table 2",
               "mean IoU of each channel's top-10% mask with its best part, over draws of N images (paper eq. 11)"),
        Metric("ls", "LS (location consistency)", "Location consistency (LS)", _E, "number", 5, HIGHER,
               paper_table="Table 4",
               meaning="how often a channel picks the same part across faces, over the channels active at least once"),
        # fewer peaks is better (paper Table 5), down to one: below 1 only zero (dead) maps can take a mean
        Metric("ar_mean", "AR (peaks per map)", "Activation robustness (AR: peaks per map)", _E, "number", 3,
               NEARER_ONE, "ar_std", "standard deviation over the draws", "Table 5",
               "peaks per target map by 2-D prominence (paper §5.2.4); a part detector has one"),
        Metric("zero_share", "Zero maps", "Share of maps that are zero everywhere", _E, "percent", 1, LOWER,
               meaning="maps with no activation at all (dead for that face)"),
        Metric("at_most_two_share", "Maps with \u2264 2 peaks", "Share of maps with at most two peaks", _E, "percent",
               1, HIGHER, meaning="maps with one or two peaks (a part, or a pair of eyes)"),
        # no better side: a collapsed network (every channel on one large part) has a high overlap; read it beside PE
        Metric("channel_overlap", "Channel overlap (mean IoU of two channels' masks)",
               "Channel overlap (mean IoU of two channels' top-10% masks)", _E, "number", 4, None,
               meaning="mean IoU of two channels' top-10% masks on the same face: channels that all look at one place"),
        # a part detector's peak moves with the face; one fixed in the image stays (explainface.evaluate.follow)
        Metric("follows", "Channels that follow the face", "Channels that follow the face (peaks moving with a face "
               "moved 16 px)", _E, "percent", 1, HIGHER,
               meaning="channels whose peak moves with a face shifted 16 px (a detector) rather than staying put"),
        Metric("parts_owned", "Parts owned", "Parts owned (parts whose channel picks them in at least half of the "
               "faces)", _E, "count", 2, HIGHER, meaning="face parts with a channel that picks them in at least half "
               "of the faces (mean over seeds)"),
        # Yin et al.'s average location: how far a channel's peak wanders over faces (a part moves only with the face)
        Metric("peak_spread", "Peak spread (px; s.d. of a channel's peak location)", "Peak spread (px: s.d. of each "
               "channel's peak location over faces)", _E, "number", 2, LOWER,
               meaning="how far a channel's peak wanders over faces, in input pixels (Yin et al.'s average location)"),
    )
}  # fmt: skip


def metric(key: str) -> Metric:
    try:
        return METRICS[key]
    except KeyError:
        raise ValueError(f"unknown metric {key!r}; known: {', '.join(METRICS)}") from None


def better_index(m: Metric, values: list[float | None]) -> int | None:
    """Index of the better of two values, or None when the metric has no better side, one is missing, or they
    tie."""
    if m.better is None or any(v is None or not math.isfinite(v) for v in values):
        return None
    a, b = (m.score(v) for v in values)
    return None if a == b else 0 if a > b else 1


def metrics_markdown() -> str:
    """The metric table as Markdown (docs/metrics.md holds it: a test keeps the two equal)."""
    rows = ["| key | file | metric | shown as | better | spread | paper |", "|---|---|---|---|---|---|---|"]
    for m in METRICS.values():
        shown = {"percent": f"% ({m.digits} decimals)", "number": f"{m.digits} decimals",
                 "count": "count" + (f" ({m.digits} decimals)" if m.digits else "")}[m.unit]  # fmt: skip
        spread = f"`{m.spread}`: {m.spread_name}" if m.spread else ""
        rows.append(f"| `{m.key}` | {m.source}.json | {m.title}: {m.meaning} | {shown} | {m.better or 'no side'} | "
                    f"{spread} | {m.paper_table} |")  # fmt: skip
    return "\n".join(rows) + "\n"
