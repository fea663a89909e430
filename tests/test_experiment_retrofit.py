"""The experiment compares a pretrained network (`original`: 0 steps, saved and evaluated like any run) with its
retrofits (`retrofit[:options]`) over seeds, with paired statistics against `original`."""

from __future__ import annotations

import json

import pytest
import torch

from explainface.experiments import ExperimentPlan
from explainface.experiments.methods import method_steps, reference_method
from explainface.experiments.run import base_config, run_config, run_experiment
from explainface.models import create_model


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("weights") / "backbone.pth"  # insightface's layout, as torch.save writes it
    torch.save(create_model("iresnet18", width=0.125, input_size=56, embedding_dim=16).state_dict(), path)
    return path


def _plan(backbone, **kw) -> ExperimentPlan:
    overrides = ["model.name=iresnet18", "model.width=0.125", "model.input_size=56", "model.embedding_dim=16",
                 f"model.weights={backbone}", "data.identities=8", "data.per_identity=6", "optim.batch_size=8",
                 "run.threads=1", "data.workers=0"]  # fmt: skip
    return ExperimentPlan.quick_plan(methods=["retrofit:preserve=20", "original"], seeds=2, steps=3, images=8,
                                     runs=1, overrides=overrides, **kw)  # fmt: skip


def test_original_takes_no_steps_and_is_the_reference_and_retrofit_is_the_recipe(backbone):
    base = base_config(_plan(backbone))
    orig, retro = run_config(base, "original", 0, 30), run_config(base, "retrofit:preserve=20", 0, 30)
    assert method_steps("original") == 0 and orig.optim.max_steps == 0 and retro.optim.max_steps == 30
    assert orig.regularizers == [] and orig.head.name == "none"
    assert orig.model.identity_layers == ["act3"]  # insightface's network as they run it: no ReLU after layer3
    assert retro.model.identity_layers == [] and retro.head.name == "none" and retro.optim.freeze_bn
    assert [(r["name"], r["beta"]) for r in retro.regularizers] == [("ecloss_fit", 1.0), ("preserve", 20.0)]
    assert retro.regularizers[1]["identity_layers"] == ["act3"]
    assert reference_method(["retrofit", "original"]) == "original"
    assert reference_method(["ecloss", "softmax", "original"]) == "softmax"
    assert reference_method(["ecloss", "retrofit"]) == "ecloss"
    with pytest.raises(ValueError, match="original takes no options"):
        run_config(base, "original:beta=1", 0, 30)


@pytest.mark.slow
def test_an_experiment_compares_the_original_with_its_retrofits_over_seeds(backbone, tmp_path):
    res = run_experiment(_plan(backbone), tmp_path / "exp", progress=False)
    assert res["reference"] == "original" and set(res["paired"]) == {"retrofit:preserve=20"}
    orig = res["methods"]["original"]["seeds"]
    same = [json.dumps(seed["synthetic"], sort_keys=True) for seed in orig]  # as JSON: NaN == NaN
    assert same[0] == same[1]  # the same network, evaluated the same way
    paired = res["paired"]["retrofit:preserve=20"]["synthetic"]["accuracy_mean"]
    assert paired["n"] == 2 and "p_value" in paired
    done = json.loads((tmp_path / "exp" / "runs" / "original" / "seed0" / "done.json").read_text())
    assert done["steps"] == 0 and not (tmp_path / "exp" / "runs" / "original" / "seed1").exists()  # measured once
    steps = json.loads((tmp_path / "exp" / "runs" / "retrofit__preserve=20" / "seed0" / "done.json").read_text())
    assert steps["steps"] == 3
