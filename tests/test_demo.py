"""`explainface demo`, CI-sized: both networks train, every metric is present and finite, the report renders."""

from __future__ import annotations

import json
import math

import pytest

from explainface.experiments.demo import DemoPlan, train_config
from explainface.report.html import SECTIONS

METRICS = ("accuracy_mean", "accuracy_std", "auc", "eer", "pe_mean", "pe_se", "ls", "ls_channels", "ar_mean",
           "ar_std", "zero_share", "at_most_two_share", "channel_overlap")  # fmt: skip


def test_the_two_networks_differ_only_in_the_regulariser():
    plan = DemoPlan()
    a, b = train_config(plan, ecloss=True, max_steps=100).to_dict(), train_config(plan, False, 100).to_dict()
    assert a.pop("regularizers") != b.pop("regularizers")
    assert a == b


@pytest.mark.slow
def test_quick_demo_trains_both_networks_and_writes_summary_and_report(tmp_path, capsys):
    from explainface.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and "ECLoss" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"ecloss", "softmax"}
    for name, m in summary["models"].items():
        for key in METRICS:
            assert isinstance(m[key], int | float) and math.isfinite(m[key]), (name, key, m.get(key))
        assert (out / name / "checkpoints" / "last.safetensors").is_file()
    html = (out / "report.html").read_text()
    for sid, _ in SECTIONS:
        assert f'id="{sid}"' in html
    assert summary["steps_per_network"] >= 10


def test_the_ecloss_network_trains_the_recommended_recipe_and_paper_mode_is_one_option_away():
    from explainface.experiments.methods import RECOMMENDED, method_config
    from explainface.training.config import TrainConfig

    (reg,) = train_config(DemoPlan(), ecloss=True, max_steps=10).regularizers
    assert reg == method_config(RECOMMENDED, TrainConfig()).regularizers[0]
    (paper,) = train_config(DemoPlan(method="ecloss"), ecloss=True, max_steps=10).regularizers
    assert paper == {"name": "ecloss", "beta": "auto"}


def test_ecloss_options_reach_only_the_ecloss_network_and_typos_are_errors():
    import pytest

    plan = DemoPlan(method="ecloss", ecloss_options=["normalize=max", "temperature=0.05"])
    (reg,) = train_config(plan, ecloss=True, max_steps=10).regularizers
    assert (reg["name"], reg["normalize"], reg["temperature"]) == ("ecloss", "max", 0.05)
    assert train_config(plan, ecloss=False, max_steps=10).regularizers == []
    with pytest.raises(ValueError, match="nope"):
        train_config(DemoPlan(method="ecloss", ecloss_options=["nope=1"]), ecloss=True, max_steps=10)
    with pytest.raises(ValueError, match="unknown method"):
        train_config(DemoPlan(method="ecloss_paper"), ecloss=True, max_steps=10)
