"""One API shape (issue 16): the top-level verbs, a model as a path or a module, `faces` for the face source,
results returned and written only given `out_dir`."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import explainface as ef
from checkpoints import tiny_checkpoint

PIPELINES = ("verify", "explain", "faithfulness", "visualize", "why", "build_report")


def test_every_top_level_name_resolves_to_the_library_object():
    import explainface.evaluate.verification_pipeline
    import explainface.models
    import explainface.training.trainer

    for name in ef.__all__:
        assert getattr(ef, name) is not None, name
    assert ef.train is explainface.training.trainer.train
    assert ef.verify is explainface.evaluate.verification_pipeline.verify
    assert ef.create_model is explainface.models.create_model
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ef.nope  # noqa: B018


def test_importing_the_package_stays_light():
    code = "import sys, explainface; print(sorted(m for m in ('torch', 'cv2', 'matplotlib') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_the_pipelines_share_one_shape():
    for name in PIPELINES:
        params = inspect.signature(getattr(ef, name)).parameters
        assert next(iter(params)) == "model", name
        assert "out_dir" in params, name
        assert not {"data", "images", "model_path", "checkpoint"} & set(params), (name, list(params))
    for name in ("explain", "visualize", "why", "build_report"):
        assert "faces" in inspect.signature(getattr(ef, name)).parameters, name
    for name in ("verify", "explain", "faithfulness", "why"):  # a result, not a file: out_dir is optional
        assert inspect.signature(getattr(ef, name)).parameters["out_dir"].default is None, name


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", input_size=56)


@pytest.mark.slow
def test_a_module_and_its_checkpoint_give_the_same_results_and_nothing_is_written(ckpt, tmp_path, monkeypatch):
    from explainface.training.checkpoint import load_model

    monkeypatch.chdir(tmp_path)
    export = ef.export_synthetic(tmp_path / "faces", 0, 3, size=56, heldout_identities=20, pairs_per_fold=2,
                                 progress=False)  # fmt: skip
    before = set(tmp_path.rglob("*"))
    module = load_model(ckpt).model
    by_path = ef.verify(ckpt, export["pairs_path"], progress=False)
    by_module = ef.verify(module, export["pairs_path"], progress=False)
    assert by_path["accuracy_mean"] == by_module["accuracy_mean"] and by_path["auc"] == by_module["auc"]
    assert by_module["model"].endswith("(in memory)")
    ex_path = ef.explain(ckpt, "synthetic", n_faces=8, runs=2, limit=12, progress=False)
    ex_module = ef.explain(module, "synthetic", n_faces=8, runs=2, limit=12, progress=False)
    assert ex_path["pe_mean"] == ex_module["pe_mean"] and ex_path["ls"] == ex_module["ls"]
    assert set(tmp_path.rglob("*")) == before  # no out_dir: no file anywhere


def test_train_takes_a_config_object_with_overrides(tmp_path):
    cfg = ef.load_config(None, ["model.width=0.125", "model.input_size=56", "data.identities=4",
                                "data.per_identity=4", "data.workers=0", "optim.batch_size=4"])  # fmt: skip
    summary = ef.train(cfg, tmp_path / "run", overrides=["optim.max_steps=2"], progress=False)
    assert summary["steps"] == 2 and (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()
    with pytest.raises(ValueError, match="optim"):
        ef.train(cfg, tmp_path / "bad", overrides=["optim.nope=1"], progress=False)
