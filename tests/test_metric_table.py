"""The one metric table: formats, better sides, and the documentation generated from it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from explainface.metric_table import DASH, METRICS, UNITS, better_index, metric, metrics_markdown


def test_every_metric_is_complete_and_its_unit_known():
    for key, m in METRICS.items():
        assert m.key == key and m.label and m.title and m.meaning
        assert m.unit in UNITS and m.source in ("verification", "explainability")
        assert m.better in ("higher", "lower", "nearer 1", None)


def test_values_spreads_and_differences_are_shown_in_the_metrics_unit():
    acc, ls, ar = METRICS["accuracy_mean"], METRICS["ls"], METRICS["ar_mean"]
    assert acc.with_spread(0.98765, 0.0123) == "98.77% \u00b1 1.23"
    assert acc.format_delta(-0.0051) == "\u22120.51 pp" and acc.format_delta(0.01) == "+1.00 pp"
    assert ls.format(0.0333) == "0.03330" and ar.with_spread(1.2, None) == "1.200"
    assert acc.format(None) == DASH and acc.format(math.nan) == DASH and acc.with_spread(None, 0.1) == DASH


@pytest.mark.parametrize(("key", "values", "best"), [
    ("accuracy_mean", [0.9, 0.8], 0), ("eer", [0.1, 0.05], 1), ("ar_mean", [0.5, 1.8], 0), ("ar_mean", [3.0, 1.2], 1),
    ("channel_overlap", [0.1, 0.2], None), ("pe_mean", [0.1, None], None), ("pe_mean", [0.1, 0.1], None),
])  # fmt: skip
def test_the_better_value_follows_the_metrics_side(key, values, best):
    assert better_index(METRICS[key], values) == best


def test_an_unknown_metric_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        metric("acc")


def test_the_docs_hold_the_generated_table():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    assert metrics_markdown() in doc, "docs/metrics.md is stale: regenerate it from metric_table.metrics_markdown()"


def test_the_experiment_tables_and_the_report_use_the_table():
    from explainface.experiments.tables import TABLED
    from explainface.report.html import EXPLAIN_ROWS, SUMMARY_ROWS

    assert set(TABLED) <= set(METRICS)
    rows = [r for r in SUMMARY_ROWS + EXPLAIN_ROWS if r.metric is not None]
    assert {r.key[0] for r in rows} >= {"accuracy_mean", "pe_mean", "ls", "ar_mean"}
    assert all(r.metric is METRICS[r.key[0]] and r.label == r.metric.label for r in rows)
