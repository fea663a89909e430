"""The paper's Tables 2-5 from an experiment's results: one table per metric, methods x evaluation sets, each cell
mean ± standard error over seeds, the paired difference against the reference method with its p-value, and the
paper's own numbers beside ours where the paper has a matching row (same network family, softmax or paper-mode
ECLoss) and dataset.

`build_tables(results)` gives plain data (`Table`), rendered as Markdown here (`tables_markdown`) and as HTML by
`experiments.page`, so the two can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from explainface.metric_table import DASH, METRICS, Metric

#: Significance level for marking the better value.
ALPHA = 0.05


#: The metrics an experiment tables, in this order (their definitions: `metric_table.METRICS`).
TABLED = ("accuracy_mean", "pe_mean", "ls", "ar_mean", "at_most_two_share", "channel_overlap", "follows", "parts_owned",
          "peak_spread")  # fmt: skip


# The paper's numbers (Lin et al., Tables 2-5): network -> (softmax, ECLoss) per dataset.
PAPER: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "pe_mean": {
        "VGG13": {"LaPa": (0.1642, 0.1710), "AFW": (0.1612, 0.1687), "Helen": (0.1646, 0.1711),
                  "LFPW": (0.1625, 0.1702), "300-W": (0.1554, 0.1623)},
        "VGG16": {"LaPa": (0.1479, 0.1632), "AFW": (0.1447, 0.1490), "Helen": (0.1530, 0.1566),
                  "LFPW": (0.1443, 0.1431), "300-W": (0.1396, 0.1443)},
        "VGG19": {"LaPa": (0.0424, 0.0432), "AFW": (0.0396, 0.0426), "Helen": (0.0396, 0.0466),
                  "LFPW": (0.0376, 0.0430), "300-W": (0.0381, 0.0376)},
    },
    "accuracy_mean": {
        "VGG13": {"LFW": (0.9195, 0.9215), "CFP-FF": (0.7957, 0.7970), "CALFW": (0.7655, 0.7713)},
        "VGG16": {"LFW": (0.9320, 0.9408), "CFP-FF": (0.7859, 0.8067), "CALFW": (0.7810, 0.8070)},
        "VGG19": {"LFW": (0.9096, 0.9175), "CFP-FF": (0.7590, 0.7616), "CALFW": (0.7097, 0.7598)},
    },
    "ls": {
        "VGG13": {"LaPa": (0.02537, 0.04029), "AFW": (0.01971, 0.03654), "Helen": (0.02082, 0.03661),
                  "LFPW": (0.02187, 0.03796), "300-W": (0.02122, 0.03770)},
        "VGG16": {"LaPa": (0.02743, 0.02898), "AFW": (0.03516, 0.03589), "Helen": (0.03032, 0.03327),
                  "LFPW": (0.04230, 0.04175), "300-W": (0.02867, 0.03417)},
        "VGG19": {"LaPa": (0.08075, 0.09382), "AFW": (0.08307, 0.09503), "Helen": (0.08767, 0.09592),
                  "LFPW": (0.08217, 0.09453), "300-W": (0.08450, 0.09418)},
    },
    "ar_mean": {
        "VGG13": {"VGGFace": (3.733, 2.596), "LFW": (3.945, 2.784), "CFP": (3.580, 2.495), "AgeDB": (3.984, 2.718),
                  "Helen": (4.070, 2.816), "LaPa": (3.918, 2.889)},
        "VGG16": {"VGGFace": (3.714, 3.144), "LFW": (3.994, 3.272), "CFP": (3.994, 3.210), "AgeDB": (3.889, 3.429),
                  "Helen": (3.946, 3.242), "LaPa": (3.847, 3.395)},
        "VGG19": {"VGGFace": (2.987, 1.672), "LFW": (2.965, 1.743), "CFP": (2.646, 1.493), "AgeDB": (3.053, 1.775),
                  "Helen": (3.083, 1.829), "LaPa": (3.068, 1.849)},
    },
}  # fmt: skip
#: The paper's dataset shown "for scale" when none of ours matches (e.g. the synthetic faces).
SCALE_DATASET = {"pe_mean": "Helen", "accuracy_mean": "LFW", "ls": "Helen", "ar_mean": "Helen"}
_DATASET_NAMES = {"lfw": "LFW", "cfp_ff": "CFP-FF", "cfp-ff": "CFP-FF", "calfw": "CALFW", "helen": "Helen",
                  "lapa": "LaPa", "afw": "AFW", "lfpw": "LFPW", "300w": "300-W", "300-w": "300-W",
                  "vggface": "VGGFace", "agedb": "AgeDB", "cfp": "CFP"}  # fmt: skip


def paper_dataset(eval_set: str, metric: str) -> str | None:
    """The paper's dataset an evaluation set of ours corresponds to for `metric`, if any (Table 5's "CFP" takes
    either CFP protocol's faces)."""
    name = _DATASET_NAMES.get(eval_set.lower())
    if metric == "ar_mean" and eval_set.lower() in ("cfp_ff", "cfp_fp", "cfp-ff", "cfp-fp"):
        name = "CFP"
    return name if name in PAPER.get(metric, {}).get("VGG16", {}) else None


def paper_network(model_name: str) -> str | None:
    """``vgg16_bn`` -> ``VGG16``: the paper's row for our network family, if it has one."""
    base = model_name.lower().removesuffix("_bn")
    return base.upper() if base in ("vgg13", "vgg16", "vgg19") else None


def paper_value(metric: str, network: str | None, method: str, dataset: str) -> float | None:
    """The paper's number for (network, method, dataset), where method is ``softmax`` or plain ``ecloss``."""
    if network is None or method not in ("softmax", "ecloss"):
        return None
    pair = PAPER.get(metric, {}).get(network, {}).get(dataset)
    return None if pair is None else pair[method == "ecloss"]


@dataclass
class Cell:
    text: str
    better: bool = False  # the better of a significantly different pair


@dataclass
class Table:
    id: str
    caption: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    note: str = ""


def _fmt_diff(p: dict | None, m: Metric) -> str:
    if not p or p.get("diff") is None or not math.isfinite(p["diff"]):
        return DASH
    pv = p.get("p_value")
    return m.format_delta(p["diff"]) + (f" (p={pv:.3f})" if pv is not None and math.isfinite(pv) else f" (p {DASH})")


def build_tables(results: dict) -> list[Table]:
    """One `Table` per metric of `METRICS` that some run measured (see the module docstring)."""
    methods = list(results["methods"])
    ref = results.get("reference")
    sets = results["plan"]["eval_sets"]
    network = paper_network(results["plan"]["model"])
    tables = []
    for spec in (METRICS[k] for k in TABLED):
        measured = [s for s in sets if any(spec.key in results["methods"][m]["mean"].get(s, {}) for m in methods)]
        if not measured:
            continue
        papers = [d for d in (paper_dataset(s, spec.key) for s in measured) if d] if spec.key in PAPER else []
        papers = papers if network is not None else []  # a network the paper has no row for: no "paper" columns
        scale = not papers and spec.key in PAPER and network is not None
        if scale:
            papers = [SCALE_DATASET[spec.key]]
        columns = ["method"]
        for s in measured:
            columns.append(s)
            if ref is not None and len(methods) > 1:
                columns.append(f"{s}: \u0394 vs {ref}")
        columns += [f"paper {network} on {d}" + (" (other data, for scale)" if scale else "") for d in papers]
        rows = []
        for m in methods:
            res = results["methods"][m]
            cells = []
            for s in measured:
                mean, se = res["mean"].get(s, {}).get(spec.key), res["se"].get(s, {}).get(spec.key)
                cells.append(Cell(spec.with_spread(mean, se), _is_better(results, m, s, spec)))
                if ref is not None and len(methods) > 1:
                    p = results["paired"].get(m, {}).get(s, {}).get(spec.key) if m != ref else None
                    cells.append(Cell(_fmt_diff(p, spec) if m != ref else ""))
            for d in papers:
                cells.append(Cell(spec.format(paper_value(spec.key, network, m, d))))
            label = f"{m} (n={res['n']})"
            rows.append((label, cells))
        better = f", {spec.better} is better" if spec.better else " (no better side: read it beside PE)"
        caption = f"{spec.paper_table + ': ' if spec.paper_table else ''}{spec.title}{better}"
        note = (f"mean \u00b1 standard error over seeds; \u0394 = paired difference against {ref} over the same "
                f"seeds, p = paired t-test; bold = the better of a pair that differs at p < {ALPHA}.")  # fmt: skip
        tables.append(Table(spec.key, caption, columns, rows, note))
    return tables


def _is_better(results: dict, method: str, eval_set: str, spec: Metric) -> bool:
    """Whether `method`'s cell is the better side of a significant paired difference (against the reference, or
    for the reference: against any method)."""
    ref = results.get("reference")

    def score(m: str) -> float:
        x = results["methods"][m]["mean"].get(eval_set, {}).get(spec.key)
        return spec.score(math.nan if x is None else x)

    def significant(m: str) -> bool:
        p = results["paired"].get(m, {}).get(eval_set, {}).get(spec.key)
        return bool(p and p.get("p_value") is not None and math.isfinite(p["p_value"]) and p["p_value"] < ALPHA)

    if method != ref:
        return significant(method) and score(method) > score(ref)
    return any(significant(m) and score(ref) > score(m) for m in results["methods"] if m != ref)


def dictionary_table(results: dict) -> Table | None:
    """Channels per dominant part (the channel dictionary), mean over seeds, per method and faces set."""
    rows, parts = [], []
    for m, res in results["methods"].items():
        for s in results["plan"]["eval_sets"]:
            counts = [seed[s]["part_channels"] for seed in res.get("seeds", []) if "part_channels" in seed.get(s, {})]
            if not counts:
                continue
            for c in counts:
                parts += [p for p in c if p not in parts]
            rows.append((m, s, counts))
    if not rows:
        return None
    table = Table("part_channels", "Channel dictionary: channels per dominant part (mean over seeds)",
                  ["method", "set", *parts])  # fmt: skip
    for m, s, counts in rows:
        cells = [Cell(s)] + [Cell(f"{sum(c.get(p, 0) for c in counts) / len(counts):.1f}") for p in parts]
        table.rows.append((f"{m} (n={len(counts)})", cells))
    table.note = "a channel's dominant part is the part its top-10% mask overlaps best most often (paper §5.2.3)."
    return table


def tables_markdown(results: dict) -> str:
    """The tables as Markdown, with the command that reproduces them."""
    lines = [f"# {results.get('title', 'Experiment')}", ""]
    plan = results["plan"]
    lines.append(
        f"{plan['model']} w{plan['width']:g} at {plan['input_size']} px; {plan['steps']} steps of batch "
        f"{plan['batch_size']} per run; seeds {', '.join(map(str, plan['seeds']))}; training data: {plan['data']}; "
        f"evaluation sets: {', '.join(plan['eval_sets'])}."
    )
    lines.append("")
    for run, error in (results.get("failed") or {}).items():  # runs that diverged: named, left out of the tables
        lines += [f"**Failed: {run}** ({error})", ""]
    dictionary = dictionary_table(results)
    for t in build_tables(results) + ([dictionary] if dictionary else []):
        lines += [f"## {t.caption}", ""]
        lines.append("| " + " | ".join(t.columns) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(t.columns) - 1)) + "|")
        for label, cells in t.rows:
            texts = [f"**{c.text}**" if c.better else c.text for c in cells]
            lines.append("| " + " | ".join([label, *texts]) + " |")
        lines += ["", t.note, ""]
    if results.get("command"):
        lines += ["## Reproduce", "", "```bash", results["command"], "```", ""]
    return "\n".join(lines)
