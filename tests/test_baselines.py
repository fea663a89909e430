"""The seed baselines through the trainer's extension point: xCos (a regulariser with a pair head) and Yin et al.
(a regulariser that needs landmarks); checkpoints that carry the pair head; scoring by it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.checkpoints import tiny_checkpoint

from explainface.training.checkpoint import load_checkpoint, load_model, unprefixed
from explainface.training.config import load_config

TINY = ["model.name=vgg13", "model.width=0.125", "model.input_size=56", "model.embedding_dim=32",
        "data.identities=6", "data.per_identity=4", "data.workers=0", "optim.batch_size=8",
        "optim.warmup_steps=1", "run.log_every=1", "run.deterministic=true", "run.threads=1", "val.pairs=null",
        "run.checkpoint_every=100"]  # fmt: skip


def _xcos_config(reference, steps: int = 6):
    cfg = load_config(None, [*TINY, f"optim.max_steps={steps}"])
    cfg.regularizers = [{"name": "xcos", "beta": 1.0, "reference": str(reference), "pairs": 32}]
    return cfg


@pytest.mark.slow
def test_an_xcos_run_trains_its_pair_head_saves_it_and_resumes_exactly(tmp_path):
    from explainface.training.trainer import Trainer

    ref = tiny_checkpoint(tmp_path / "ref.safetensors", input_size=56)
    cfg = _xcos_config(ref)
    t = Trainer(cfg, tmp_path / "a", progress=False)
    head0 = {k: v.clone() for k, v in t.regs[0].head.state_dict().items()}
    summary = t.train()
    tensors, state = load_checkpoint(summary["checkpoint"])
    assert set(state["pair_heads"]) == {"xcos"}
    spec = state["pair_heads"]["xcos"]
    saved = unprefixed(spec["prefix"], tensors)
    assert saved and any(not torch.equal(saved[k], head0[k]) for k in saved if k.endswith("weight"))  # it learned

    # interrupted after 3 steps and resumed: the same head, backbone and optimizer as the uninterrupted run
    b = Trainer(cfg, tmp_path / "b", progress=False)
    b.sampler.set_epoch(0, 0)
    for batch in b.loader:
        b.train_step(batch[0], batch[1])
        if b.step == 3:
            break
    b.save()
    del b
    resumed = Trainer(_xcos_config(ref), tmp_path / "b", progress=False)
    assert resumed.step == 3
    resumed.train()
    tb, _ = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    for key in tensors:
        if key.startswith(("model.", "head.", "reg.")):
            assert torch.equal(tensors[key], tb[key]), key

    # inference rebuilds the head by name and scores by xCos under "auto"
    from explainface.evaluate.scoring import create_scorer

    loaded = load_model(summary["checkpoint"])
    assert set(loaded.pair_heads) == {"xcos"}
    scorer = create_scorer("auto", loaded)
    assert scorer.name == "xcos"
    x = torch.rand(4, 3, 56, 56) * 2 - 1
    f = scorer.features([x])
    s = scorer.score_pairs(f, np.array([0, 1, 2]), np.array([0, 3, 1]))
    assert s[0] == pytest.approx(1.0, abs=1e-5) and (np.abs(s) <= 1).all()
    maps = scorer.explain(f[[1]], f[[3]])
    att = maps["attention"][0]
    assert att.sum() == pytest.approx(1.0, abs=1e-5)
    assert (maps["cosine"][0] * att).sum() == pytest.approx(s[1], abs=1e-5)
    assert create_scorer("cosine", loaded).name == "cosine"  # the embedding is still there to compare


def test_a_checkpoint_with_a_damaged_pair_head_is_an_error_naming_it(tmp_path):
    from explainface.training.checkpoint import save_checkpoint

    path = tiny_checkpoint(tmp_path / "m.safetensors", input_size=56)
    tensors, state = load_checkpoint(path)
    state["pair_heads"] = {"xcos": {"options": {"in_channels": 64, "channels": 8, "grid": "pool"}, "prefix": "reg.x"}}
    bad = save_checkpoint(tmp_path / "bad.safetensors", tensors, state)
    with pytest.raises(ValueError, match="bad.safetensors.*pair head 'xcos'"):
        load_model(bad)


def test_xcos_in_an_experiment_needs_its_reference_method_first():
    from explainface.experiments.run import ExperimentPlan, validate

    with pytest.raises(ValueError, match="list 'softmax' before it"):
        validate(ExperimentPlan.quick_plan(methods=["xcos", "softmax"]))
    with pytest.raises(ValueError, match="list 'softmax' before it"):
        validate(ExperimentPlan.quick_plan(methods=["xcos"]))
    base, configs = validate(ExperimentPlan.quick_plan(methods=["softmax", "xcos", "yin"]))
    assert configs["xcos"].regularizers[0]["reference"] == "run:softmax"


def test_run_references_resolve_to_the_same_seeds_checkpoint(tmp_path):
    from explainface.experiments.run import ExperimentPlan, base_config, run_config

    base = base_config(ExperimentPlan.quick_plan(methods=["softmax", "xcos"]))
    cfg = run_config(base, "xcos", 2, 10, tmp_path)
    assert cfg.regularizers[0]["reference"] == str(tmp_path / "runs" / "softmax" / "seed2" / "checkpoints"
                                                    / "last.safetensors")  # fmt: skip


@pytest.mark.slow
def test_visualize_draws_the_xcos_panel_for_an_xcos_checkpoint(tmp_path):
    import cv2

    from explainface.explanations.visualize import visualize
    from explainface.training.trainer import Trainer

    ref = tiny_checkpoint(tmp_path / "ref.safetensors", input_size=56)
    ckpt = Trainer(_xcos_config(ref, steps=2), tmp_path / "run", progress=False).train()["checkpoint"]
    written = visualize(ckpt, "synthetic", tmp_path / "vis", n_people=2, xcos_threshold=0.3)
    img = cv2.imread(str(written["xcos"]))
    assert img is not None and img.shape[1] > 4 * 140  # four tiles
    assert "xcos" not in visualize(ref, "synthetic", tmp_path / "vis2", n_people=2)  # a plain checkpoint: none


def test_a_yin_run_gets_mirrored_landmarks_and_logs_its_terms(tmp_path, monkeypatch):
    import math

    from explainface.losses import yin as yin_module
    from explainface.training.trainer import Trainer, read_metrics

    cfg = load_config(None, [*TINY, "optim.max_steps=3"])
    cfg.regularizers = [{"name": "yin", "beta": 1.0}]
    seen = []
    original = yin_module.YinLoss.loss

    def spy(self, ctx):
        seen.append((ctx.images.detach().clone(), None if ctx.landmarks is None else ctx.landmarks.clone()))
        return original(self, ctx)

    monkeypatch.setattr(yin_module.YinLoss, "loss", spy)
    t = Trainer(cfg, tmp_path / "yin", progress=False)
    assert t.with_landmarks
    t.train()
    cols = read_metrics(tmp_path / "yin")
    for key in ("yin.sad", "yin.sad_occluded", "yin.fad", "yin.ce_occluded"):
        assert all(math.isfinite(v) for v in cols[key]), key
    # the landmarks given with each step's images are the faces' own, mirrored where the image was flipped
    from explainface.readers.landmarks import mirror_landmarks

    images, lm = seen[0]
    order = next(iter(t.sampler.__class__(len(t.dataset), 8, cfg.run.seed)))  # epoch 0, first batch
    flips = 0
    for k, i in enumerate(order):
        own = torch.from_numpy(t.dataset.sample(i).landmarks)
        flipped = not torch.allclose(images[k], t.dataset[i][0], atol=1e-6)
        flips += flipped
        torch.testing.assert_close(lm[k], mirror_landmarks(own, 56) if flipped else own)
    assert 0 < flips < len(order)  # both cases were checked


@pytest.mark.slow
def test_the_baselines_go_through_one_experiment_with_an_occluded_set(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "explainface", "experiment", "--out", str(out), "--quiet", "--quick", "--steps", "4",
           "--seeds", "1", "--images", "8", "--methods", "softmax,yin,xcos", "data.identities=8",
           "data.per_identity=6", "optim.batch_size=8", "model.input_size=56", "run.threads=1"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["plan"]["eval_sets"] == ["synthetic", "synthetic_occluded"]
    for m in ("softmax", "yin", "xcos"):
        seed = results["methods"][m]["seeds"][0]
        assert 0 < seed["synthetic_occluded"]["accuracy_mean"] <= 1, m
        assert 0 < seed["synthetic"]["accuracy_mean"] <= 1, m
        assert (out / "runs" / m / "seed0" / "eval" / "synthetic" / "explain" / "average_peaks.png").is_file(), m
    scores = {m: json.loads((out / "runs" / m / "seed0" / "eval" / "synthetic" / "verify" / "verification.json")
                            .read_text())["score"] for m in ("softmax", "xcos")}  # fmt: skip
    assert scores == {"softmax": "cosine", "xcos": "xcos"}
    xcos_cfg = json.loads((out / "runs" / "xcos" / "seed0" / "done.json").read_text())["config"]
    assert xcos_cfg["regularizers"][0]["reference"].endswith("runs/softmax/seed0/checkpoints/last.safetensors")
    md = (out / "tables.md").read_text()
    assert "synthetic_occluded" in md and "| yin" in md and "| xcos" in md
