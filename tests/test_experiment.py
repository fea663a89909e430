"""`explainface experiment`: methods x seeds on one budget, resumable after SIGKILL, mean/se and paired tests
checked against scipy, the tables, the page in a real browser, and bad input refused before any training."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from browser import chromium_path, render
from explainface.experiments import ExperimentPlan, mean_se, paired_test, parse_method
from explainface.experiments.methods import list_methods, method_config, split_methods
from explainface.experiments.run import base_config, run_config, run_experiment
from explainface.experiments.tables import build_tables, tables_markdown

#: A CI-sized experiment: 2 methods x 2 seeds, a tiny network at 56 px, 24 steps each.
TINY = ["--quick", "--steps", "24", "--images", "10", "data.identities=8", "data.per_identity=6",
        "optim.batch_size=8", "model.input_size=56", "run.threads=1"]  # fmt: skip


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "explainface", "experiment", "--out", str(out), "--quiet", *TINY, *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("experiment") / "ref"
    res = subprocess.run(_cmd(out), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


# --- methods ------------------------------------------------------------------------------------------------------


def test_methods_are_split_on_commas_and_parse_their_options():
    specs = split_methods("softmax,ecloss:normalize=max,marginal=channels,ecloss")
    assert specs == ["softmax", "ecloss:normalize=max,marginal=channels", "ecloss"]
    # an option value may hold ':' (beta=auto:1): still an option of the method before it
    assert split_methods("ecloss:beta=auto:1,k=full,ecloss-fit:start=0.4,beta=auto:2") == [
        "ecloss:beta=auto:1,k=full", "ecloss-fit:start=0.4,beta=auto:2"]  # fmt: skip
    assert parse_method("ecloss:beta=auto:1")[1] == {"beta": "auto:1"}
    assert parse_method("ecloss:normalize=max,temperature=0.05,k=full") == (
        "ecloss", {"normalize": "max", "temperature": 0.05, "k": "full"})  # fmt: skip
    assert {"softmax", "ecloss"} <= set(list_methods())
    with pytest.raises(ValueError, match="twice"):
        split_methods("softmax,softmax")


def test_a_method_only_sets_the_regularizers_of_the_shared_config():
    base = base_config(ExperimentPlan())
    soft, ecl = method_config("softmax", base), method_config("ecloss:normalize=max,beta=0.5", base)
    assert soft.regularizers == [] and ecl.regularizers == [{"name": "ecloss", "beta": 0.5, "normalize": "max"}]
    a, b = soft.to_dict(), ecl.to_dict()
    a.pop("regularizers"), b.pop("regularizers")
    assert a == b and a["run"]["deterministic"] is True


def test_the_methods_of_a_seed_start_from_one_initialisation_and_see_the_same_batches(tmp_path):
    from explainface.training.trainer import Trainer

    plan = ExperimentPlan.quick_plan()
    base = base_config(plan)
    trainers = {
        (m, s): Trainer(run_config(base, m, s, 5), tmp_path / f"{m}{s}", progress=False)
        for m, s in (("softmax", 0), ("ecloss", 0), ("softmax", 1))
    }

    def weights(t):
        return torch.cat([p.detach().flatten() for p in t.module.parameters()])

    assert torch.equal(weights(trainers["softmax", 0]), weights(trainers["ecloss", 0]))
    assert not torch.equal(weights(trainers["softmax", 0]), weights(trainers["softmax", 1]))
    assert list(trainers["softmax", 0].sampler) == list(trainers["ecloss", 0].sampler)
    assert list(trainers["softmax", 0].sampler) != list(trainers["softmax", 1].sampler)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ["softmax", "eclos"]}, "unknown method 'eclos'.*registered: ecloss"),
        ({"methods": ["ecloss:normalise=max"]}, r"method 'ecloss:normalise=max'.*no option\(s\) normalise"),
        ({"methods": ["softmax:beta=1"]}, "softmax takes no options"),
        ({"pairs": {"lfw": "/nowhere/pairs.txt"}}, "evaluation set 'lfw': pairs not found: /nowhere/pairs.txt"),
        ({"faces": {"helen": "/nowhere/helen"}}, "evaluation set 'helen': no face images in /nowhere/helen"),
        ({"faces": {"bad name": "/tmp"}}, "evaluation set name 'bad name'"),
        ({"data": "/nowhere/crops"}, "training data not found: /nowhere/crops"),
        ({"seeds": 0}, "--seeds must be at least 1"),
        ({"detector": "mtcnn"}, "--detector: unknown detector 'mtcnn'; choose one of hog"),
    ],
)
def test_bad_input_fails_before_any_training_and_names_the_problem(tmp_path, change, message):
    plan = ExperimentPlan.quick_plan()
    for k, v in change.items():
        setattr(plan, k, v)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_experiment(plan, tmp_path / "exp", progress=False)
    assert not (tmp_path / "exp" / "runs").exists()


def test_paper_configs_go_through_the_same_command(tmp_path):
    root = Path(__file__).resolve().parents[1]
    plan = ExperimentPlan(config=str(root / "configs/paper/vgg16_ecloss.yaml"), data=str(tmp_path))
    base = base_config(plan)
    assert (base.model.name, base.model.input_size, base.data.kind) == ("vgg16_bn", 224, "folder")
    assert base.regularizers == [] and method_config("ecloss", base).regularizers[0]["name"] == "ecloss"
    with pytest.raises(ValueError, match="data.kind=recordio but names no data: give --data"):
        run_experiment(ExperimentPlan(config=plan.config), tmp_path / "exp", progress=False)


def test_a_malformed_pair_file_is_named_before_training(tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("10\t300\nnot a pair line at all with too many fields here\n")
    plan = ExperimentPlan.quick_plan(pairs={"lfw": str(bad)})
    with pytest.raises(ValueError, match="pairs.txt"):
        run_experiment(plan, tmp_path / "exp", progress=False)
    assert not (tmp_path / "exp" / "runs").exists()


# --- statistics ---------------------------------------------------------------------------------------------------


def test_mean_and_standard_error_match_the_textbook_formula():
    x = [0.81, 0.84, 0.79, 0.86]
    mean, se, n = mean_se(x)
    ref = np.array(x, dtype=np.float64)
    assert n == 4 and mean == pytest.approx(ref.mean(), abs=1e-15)
    assert se == pytest.approx(math.sqrt(((ref - ref.mean()) ** 2).sum() / 3) / 2, rel=1e-12)
    assert mean_se([0.5, None, float("nan")])[2] == 1 and math.isnan(mean_se([0.5])[1])
    assert math.isnan(mean_se([])[0])


def test_paired_test_matches_scipy_ttest_rel():
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10):
        a, b = rng.normal(0.5, 0.1, n), rng.normal(0.45, 0.1, n)
        p = paired_test(a.tolist(), b.tolist())
        ref = ttest_rel(a, b)
        assert p["n"] == n and p["diff"] == pytest.approx(float((a - b).mean()), rel=1e-12)
        assert p["t"] == pytest.approx(float(ref.statistic), rel=1e-10)
        assert p["p_value"] == pytest.approx(float(ref.pvalue), rel=1e-10)
        assert p["se"] == pytest.approx(float((a - b).std(ddof=1) / math.sqrt(n)), rel=1e-12)


def test_paired_test_pairs_by_position_skips_missing_and_claims_nothing_without_spread():
    p = paired_test([1.0, 2.0, None, 4.0], [0.5, 1.0, 3.0, None])
    assert p["n"] == 2 and p["diff"] == pytest.approx(0.75)
    assert math.isnan(paired_test([1.0], [0.0])["p_value"])
    flat = paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])  # every difference is 1: no spread to test against
    assert flat["diff"] == 1.0 and flat["se"] == 0.0 and math.isnan(flat["p_value"])
    with pytest.raises(ValueError, match="one length"):
        paired_test([1.0, 2.0], [1.0])


# --- tables -------------------------------------------------------------------------------------------------------


def _results(diff_p: float) -> dict:
    row = {"pe_mean": 0.15, "ar_mean": 3.0}
    return {
        "plan": {"methods": ["softmax", "ecloss"], "seeds": [0, 1, 2], "steps": 10, "model": "vgg16_bn", "width": 0.25,
                 "input_size": 112, "batch_size": 64, "data": "x", "eval_sets": ["helen"], "images": 100, "runs": 5},
        "reference": "softmax",
        "methods": {
            "softmax": {"n": 3, "mean": {"helen": row}, "se": {"helen": {"pe_mean": 0.001, "ar_mean": 0.01}}},
            "ecloss": {"n": 3, "mean": {"helen": {"pe_mean": 0.16, "ar_mean": 2.0}},
                       "se": {"helen": {"pe_mean": 0.001, "ar_mean": 0.01}}},
        },
        "paired": {"ecloss": {"helen": {"pe_mean": {"diff": 0.01, "se": 0.002, "p_value": diff_p, "n": 3},
                                        "ar_mean": {"diff": -1.0, "se": 0.1, "p_value": 0.2, "n": 3}}}},
    }  # fmt: skip


def test_tables_mark_the_better_value_only_where_the_paired_difference_is_significant():
    tables = {t.id: t for t in build_tables(_results(diff_p=0.01))}
    assert set(tables) == {"pe_mean", "ar_mean"}  # only what was measured
    pe = tables["pe_mean"]
    assert pe.columns == ["method", "helen", "helen: \u0394 vs softmax", "paper VGG16 on Helen"]
    (soft_label, soft), (ecl_label, ecl) = pe.rows
    assert soft_label == "softmax (n=3)" and soft[0].text == "0.1500 \u00b1 0.0010" and not soft[0].better
    assert ecl[0].better and ecl[1].text == "+0.0100 (p=0.010)"
    assert soft[2].text == "0.1530" and ecl[2].text == "0.1566"  # the paper's VGG16 rows on Helen (Table 2)
    ar = tables["ar_mean"]
    assert not any(c.better for _, cells in ar.rows for c in cells)  # p = 0.2: nothing marked
    assert not any(c.better for _, cells in build_tables(_results(diff_p=0.2))[0].rows for c in cells)
    md = tables_markdown(_results(diff_p=0.01))
    assert "| ecloss (n=3) | **0.1600 \u00b1 0.0010** |" in md and "Table 2: Part explainability" in md
    other = _results(diff_p=0.01)
    other["plan"]["model"] = "dlib_resnet"  # a network the paper has no row for: no "paper None" column
    assert build_tables(other)[0].columns == ["method", "helen", "helen: \u0394 vs softmax"]


# --- end to end ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_experiment_writes_results_tables_and_page(finished):
    res = json.loads((finished / "results.json").read_text())
    assert set(res["methods"]) == {"softmax", "ecloss"} and res["reference"] == "softmax"
    for m in ("softmax", "ecloss"):
        entry = res["methods"][m]
        assert entry["n"] == 2 and [s["seed"] for s in entry["seeds"]] == [0, 1]
        for s in entry["seeds"]:
            for key in ("accuracy_mean", "pe_mean", "ls", "ar_mean", "at_most_two_share", "channel_overlap"):
                assert math.isfinite(s["synthetic"][key]), (m, key)
        vals = [s["synthetic"]["pe_mean"] for s in entry["seeds"]]
        assert entry["mean"]["synthetic"]["pe_mean"] == pytest.approx(np.mean(vals))
        assert entry["se"]["synthetic"]["pe_mean"] == pytest.approx(np.std(vals, ddof=1) / math.sqrt(2))
        for s in entry["seeds"]:  # the channel dictionary: every channel of the 32 (vgg13_bn w0.0625) has a part
            counts = s["synthetic"]["part_channels"]
            assert sum(counts.values()) == 32 and {"eyes", "nose", "mouth"} <= set(counts)
        for seed in (0, 1):
            run = finished / "runs" / m / f"seed{seed}"
            assert (run / "checkpoints" / "last.safetensors").is_file()
            assert (run / "eval" / "synthetic" / "explain" / "channel_dictionary.json").is_file()
    p = res["paired"]["ecloss"]["synthetic"]["pe_mean"]
    a = [s["synthetic"]["pe_mean"] for s in res["methods"]["ecloss"]["seeds"]]
    b = [s["synthetic"]["pe_mean"] for s in res["methods"]["softmax"]["seeds"]]
    assert p["diff"] == pytest.approx(np.mean(np.subtract(a, b))) and p["n"] == 2
    assert res["plan"]["steps"] == 24 and "explainface experiment" in res["command"]
    md = (finished / "tables.md").read_text()
    for title in (
        "Table 2",
        "Table 3",
        "Table 4",
        "Table 5",
        "at most two peaks",
        "channels per dominant part",
        "## Reproduce",
    ):
        assert title in md
    html = (finished / "experiment.html").read_text()
    assert html.count("<img ") == 7  # curves + gallery, dictionary and average peak locations per method
    assert "average peaks" in html
    assert 'id="table-accuracy_mean"' in html and "explainface experiment --methods" in html


@pytest.mark.slow
def test_rerunning_a_finished_experiment_trains_and_evaluates_nothing(finished):
    ckpt = finished / "runs" / "ecloss" / "seed1" / "checkpoints" / "last.safetensors"
    metrics = finished / "runs" / "ecloss" / "seed1" / "eval" / "synthetic" / "metrics.json"
    before = (ckpt.stat().st_mtime_ns, metrics.stat().st_mtime_ns)
    old = json.loads((finished / "results.json").read_text())
    start = time.perf_counter()
    res = subprocess.run(_cmd(finished), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert time.perf_counter() - start < 60
    assert (ckpt.stat().st_mtime_ns, metrics.stat().st_mtime_ns) == before
    assert json.loads((finished / "results.json").read_text()) == old


@pytest.mark.slow
def test_a_run_with_other_settings_in_the_same_folder_is_refused(finished):
    res = subprocess.run(_cmd(finished, "optim.lr=0.2"), capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "holds an experiment with other settings" in res.stderr


@pytest.mark.slow
def test_an_experiment_killed_mid_run_resumes_to_the_same_results(finished, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    run = out / "runs" / "ecloss" / "seed0"
    deadline = time.time() + 400
    try:  # kill between the run's first checkpoint and its end: it must resume mid-run
        while not (run / "checkpoints" / "last.safetensors").is_file():
            assert proc.poll() is None and time.time() < deadline, "the experiment ended before it could be killed"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert not (run / "done.json").is_file() and not (out / "results.json").is_file()
    res = subprocess.run(_cmd(out), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from" in res.stderr
    a, b = json.loads((out / "results.json").read_text()), json.loads((finished / "results.json").read_text())
    assert a["methods"] == b["methods"] and a["paired"] == b["paired"]


needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="no Chromium (run scripts/install_browser.sh or set EXPLAINFACE_CHROMIUM)"
)


@pytest.mark.slow
@needs_chromium
def test_chromium_renders_the_experiment_page_with_every_section_and_image(finished, tmp_path):
    from explainface.experiments.page import EXPERIMENT_SECTIONS
    from test_report_html import Page

    page = Page(render(finished / "experiment.html", tmp_path / "shot.png", timeout=90))
    assert list(page.h2) == [sid for sid, _ in EXPERIMENT_SECTIONS]
    assert page.body.get("data-images-loaded") == page.body.get("data-images-total") == "7"
    rows = page.tables["table-accuracy_mean"]
    assert rows[0][:3] == ["method", "synthetic", "synthetic: \u0394 vs softmax"]
    assert [r[0] for r in rows[1:]] == ["softmax (n=2)", "ecloss (n=2)"]
    assert rows[2][2].startswith(("+", "\u2212")) and "(p" in rows[2][2]


@pytest.mark.slow
def test_training_on_identity_folders_with_named_evaluation_sets(tmp_path):
    """Real data goes by path: identity folders to train on, a pairs file and a faces folder by name."""
    from explainface.synthetic.export import export_synthetic

    export = tmp_path / "export"
    with pytest.warns(UserWarning):  # fewer pairs than LFW's 300 per fold
        export_synthetic(export, identities=8, per_identity=6, size=56, heldout_identities=10, progress=False)
    plan = ExperimentPlan.quick_plan(
        seeds=1, steps=4, data=str(export / "train"), images=8,
        pairs={"held": str(export / "heldout" / "pairs.txt")}, faces={"held": str(export / "heldout")},
        overrides=["model.input_size=56", "optim.batch_size=8", "run.threads=1"],
    )  # fmt: skip
    res = run_experiment(plan, tmp_path / "exp", progress=False)
    assert res["plan"]["eval_sets"] == ["held"] and res["plan"]["data"] == str(export / "train")
    for m in ("softmax", "ecloss"):
        (seed0,) = res["methods"][m]["seeds"]
        assert {"accuracy_mean", "pe_mean", "ar_mean"} <= set(seed0["held"])
    cfg = json.loads((tmp_path / "exp" / "plan.json").read_text())["fingerprint"]["config"]
    assert cfg["data"]["kind"] == "folder" and not (tmp_path / "exp" / "faces").exists()
    assert "--pairs held=" in res["command"] and "--data" in res["command"]


def test_a_run_folder_trained_with_other_settings_is_never_reused(tmp_path):
    import json

    from explainface.experiments.run import train_run

    base = base_config(ExperimentPlan())
    cfg = run_config(base, "ecloss-fit", 0, 10)
    folder = tmp_path / "runs" / "ecloss-fit" / "seed0"
    folder.mkdir(parents=True)
    other = json.loads(json.dumps(run_config(base, "ecloss-fit:start=0.6", 0, 10).to_dict()))
    (folder / "done.json").write_text(json.dumps({"steps": 10, "checkpoint": "x", "config": other}))
    with pytest.raises(ValueError, match="trained with other settings.*regularizers"):
        train_run(cfg, folder, progress=False)
    same = json.loads(json.dumps(cfg.to_dict()))
    (folder / "done.json").write_text(json.dumps({"steps": 10, "checkpoint": "x", "config": same}))
    assert train_run(cfg, folder, progress=False)["checkpoint"] == "x"  # finished with these settings: reused
    # a run from before an option existed (its default = the old behaviour: frame "image") is the same run
    image = run_config(base, "ecloss-fit:frame=image", 0, 10)
    older = json.loads(json.dumps(image.to_dict()))
    del older["regularizers"][0]["frame"]
    (folder / "done.json").write_text(json.dumps({"steps": 10, "checkpoint": "y", "config": older}))
    assert train_run(image, folder, progress=False)["checkpoint"] == "y"
    with pytest.raises(ValueError, match="other settings"):
        train_run(cfg, folder, progress=False)  # frame "face" is another run


def test_the_detector_crops_every_evaluation_set_and_is_part_of_the_experiment(tmp_path, monkeypatch):
    """--detector reaches verify and explain, keeps its own crop cache, is in the reproduce command, and a folder
    evaluated with another detector is refused (the default leaves plan.json as before the option existed)."""
    import explainface.evaluate.explainability_pipeline as pipeline
    import explainface.evaluate.verification_pipeline as verify_module
    from explainface.experiments.run import EvalSet, crop_cache, evaluate_run, fix_steps, reproduce_command

    seen = {}

    def fake_verify(checkpoint, pairs, out, crops_dir, workers, detector, progress):
        seen["verify"] = (detector, crops_dir)
        return {"accuracy_mean": 0.9, "accuracy_std": 0.01, "auc": 0.95, "eer": 0.1, "tar_at_far": {}}

    def fake_explain(checkpoint, faces, out, n_faces, runs, seed, detector, progress):
        seen["explain"] = detector
        raise RuntimeError("stop here")

    monkeypatch.setattr(verify_module, "verify", fake_verify)
    monkeypatch.setattr(pipeline, "explain", fake_explain)
    plan = ExperimentPlan.quick_plan(detector="hog+cnn")
    cache = crop_cache(tmp_path, 150, plan.detector)
    assert cache.name == "crops150-hog+cnn" and crop_cache(tmp_path, 150, "hog").name == "crops150"
    metrics = evaluate_run(Path("x.safetensors"), tmp_path / "run", EvalSet("lfw", pairs="p.txt"), plan, cache, False)
    assert seen["verify"] == ("hog+cnn", cache / "lfw") and metrics["accuracy_mean"] == 0.9
    with pytest.raises(RuntimeError, match="stop here"):
        evaluate_run(Path("x.safetensors"), tmp_path / "run", EvalSet("helen", faces="f"), plan, cache, False)
    assert seen["explain"] == "hog+cnn"
    assert "--detector hog+cnn" in reproduce_command(plan, tmp_path)
    assert "--detector" not in reproduce_command(ExperimentPlan.quick_plan(), tmp_path)

    base = base_config(plan)
    fix_steps(ExperimentPlan.quick_plan(), tmp_path / "hog", base, {}, print)
    assert "detector" not in json.loads((tmp_path / "hog" / "plan.json").read_text())["fingerprint"]
    fix_steps(plan, tmp_path / "cnn", base, {}, print)
    with pytest.raises(ValueError, match="other settings"):
        fix_steps(ExperimentPlan.quick_plan(), tmp_path / "cnn", base, {}, print)


def test_a_run_that_diverges_is_named_as_failed_and_the_others_go_on(tmp_path, monkeypatch):
    import explainface.experiments.run as run_module
    from explainface.errors import TrainingDiverged

    def fake_train(cfg, folder, progress):
        if "ecloss" in str(folder):
            raise TrainingDiverged(7, "the loss is nan", None)
        return {"checkpoint": str(folder / "x.safetensors"), "seconds": 1.0}

    def fake_eval(checkpoint, folder, es, plan, cache, progress):
        return {"accuracy_mean": 0.8, "accuracy_std": 0.01, "auc": 0.9, "eer": 0.2, "seconds": 0.0}

    monkeypatch.setattr(run_module, "train_run", fake_train)
    monkeypatch.setattr(run_module, "evaluate_run", fake_eval)
    monkeypatch.setattr(run_module, "write_page", lambda *a, **k: tmp_path / "page.html")
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))  # a faces folder that validate accepts
    plan = ExperimentPlan.quick_plan(seeds=2, steps=3, faces={"held": str(tmp_path)}, pairs={})
    res = run_experiment(plan, tmp_path / "exp", progress=False)
    assert set(res["failed"]) == {"ecloss/seed0", "ecloss/seed1"}
    assert "training diverged at step 7" in res["failed"]["ecloss/seed0"]
    assert res["methods"]["softmax"]["n"] == 2 and res["methods"]["ecloss"]["n"] == 0
    assert json.loads((tmp_path / "exp" / "runs" / "ecloss" / "seed0" / "failed.json").read_text())["step"] == 7
    assert "**Failed: ecloss/seed0**" in (tmp_path / "exp" / "tables.md").read_text()


def test_a_resumed_evaluation_gives_the_same_metrics_as_a_fresh_one_nan_included(tmp_path, monkeypatch):
    """Issue 26: a metric that is NaN (an undefined EER) reached results.json as null from a fresh run but was
    missing after a kill and resume (read back as None); both paths now give the same values, so the same keys."""
    import math

    import explainface.evaluate.verification_pipeline as verify_module
    from explainface.experiments.run import EvalSet, ExperimentPlan, aggregate, evaluate_run

    def fake_verify(checkpoint, pairs, out, crops_dir, workers, detector, progress):
        return {"accuracy_mean": 0.5, "accuracy_std": 0.0, "auc": math.nan, "eer": math.nan, "tar_at_far": {}}

    monkeypatch.setattr(verify_module, "verify", fake_verify)
    es, plan = EvalSet("set", pairs="p.txt"), ExperimentPlan()
    fresh = evaluate_run(tmp_path / "ckpt", tmp_path / "run", es, plan, tmp_path / "cache", False)
    resumed = evaluate_run(tmp_path / "ckpt", tmp_path / "run", es, plan, tmp_path / "cache", False)  # read back
    assert fresh == resumed and fresh["eer"] is None
    a = aggregate(["softmax"], [0], ["set"], {("softmax", 0): {"set": fresh}})
    b = aggregate(["softmax"], [0], ["set"], {("softmax", 0): {"set": resumed}})
    assert a == b and set(a["methods"]["softmax"]["mean"]["set"]) == {"accuracy_mean", "accuracy_std"}
