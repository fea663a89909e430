"""Pair explanations against planted ground truth (`explanations.groundtruth`): part swap and Patch-LFW."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from explainface.explanations.attributions import Attribution
from explainface.explanations.groundtruth import (
    PROTOCOLS,
    ground_truth,
    mcnemar_p,
    part_map,
    summarize_swaps,
    toward,
)
from explainface.parts.labels import PART_NAMES


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    from explainface.synthetic.export import export_synthetic

    d = tmp_path_factory.mktemp("gt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer pairs than LFW's 300 per fold
        export_synthetic(d, identities=0, per_identity=4, size=56, heldout_identities=6, progress=False)
    return d / "heldout" / "pairs.txt"


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs():
    from scipy.stats import binomtest

    a = [True] * 9 + [False] * 2 + [True] * 5
    b = [False] * 9 + [True] * 2 + [True] * 5
    assert mcnemar_p(a, b) == pytest.approx(binomtest(9, 11, 0.5).pvalue)
    assert mcnemar_p([True, False], [True, False]) is None


def test_a_part_level_attribution_paints_each_part_its_score_and_the_rest_lowest():
    labels = np.zeros((4, 4), np.int64)
    labels[0] = PART_NAMES.index("eyes")
    labels[1] = PART_NAMES.index("mouth")
    a = Attribution("x", 0.3, {"eyes": 0.2, "mouth": -0.1, "nose": None})
    m = part_map(a, labels)
    assert (m[0] == 0.2).all() and (m[1] == -0.1).all() and (m[2:] == -1.1).all()


def test_swap_summary_counts_hits_and_keeps_only_pairs_moved_towards_the_planted_reason():
    def rec(same, before, after, hit):
        methods = {"a": {"rank": 1.0 if hit else 3.0, "hit": hit}, "b": {"rank": 2.0, "hit": False}}
        return {"same": same, "part": "eyes", "cos_before": before, "cos_after": after, "methods": methods}

    records = [rec(False, 0.1, 0.3, True), rec(False, 0.1, 0.12, True), rec(True, 0.8, 0.6, False),
               rec(True, 0.8, 0.9, True)]  # fmt: skip
    assert [toward(r) for r in records] == pytest.approx([0.2, 0.02, 0.2, -0.1])
    s = summarize_swaps(records, ["a", "b"])
    assert s["pairs_moved"] == 2
    assert s["methods"]["a"]["all"]["hit_rate"]["mean"] == pytest.approx(0.75)
    assert s["methods"]["a"]["moved"]["hit_rate"]["mean"] == pytest.approx(0.5)
    assert s["methods"]["a"]["moved"]["hit_rate_impostor"]["mean"] == 1.0
    assert s["methods"]["a"]["moved"]["hit_rate_genuine"]["mean"] == 0.0
    assert s["methods"]["b"]["all"]["rank"]["mean"] == 2.0


def test_two_networks_are_compared_paired_over_the_pairs_both_scored():
    """compare_runs: only pairs present in both runs with the same planted part; the McNemar p is the exact binomial
    test of the discordant pairs; 'moved' keeps the pairs that moved in both networks."""
    from scipy.stats import binomtest

    from explainface.explanations.groundtruth import compare_runs

    def run(hits, after):
        recs = [{"pair": k, "same": False, "part": "eyes", "cos_before": 0.0, "cos_after": a,
                 "methods": {"m": {"hit": h, "rank": 1.0 if h else 2.0}}} for k, (h, a) in enumerate(zip(hits, after))]
        return {"methods": ["m"], "per_pair": {"part-swap": recs}}  # fmt: skip

    a = run([True] * 9 + [False, True], [0.1] * 11)
    b = run([False] * 9 + [False, False], [0.1] * 5 + [0.0] * 6)
    b["per_pair"]["part-swap"][10]["part"] = "nose"  # another planting: not comparable
    c = compare_runs(a, b)
    assert c["pairs"] == 10 and c["pairs_moved_in_both"] == 5
    m = c["methods"]["m"]
    assert m["all"]["hit_rate_a"]["mean"] == pytest.approx(0.9) and m["all"]["hit_rate_b"]["mean"] == 0.0
    assert m["all"]["p"] == pytest.approx(binomtest(9, 9, 0.5).pvalue)
    assert m["moved"]["hit_rate_a"]["n"] == 5 and m["moved"]["p"] == pytest.approx(binomtest(5, 5, 0.5).pvalue)


@pytest.mark.slow
def test_the_protocols_run_end_to_end_reproducibly_and_write_strict_json(pairs_file, tmp_path):
    from explainface.models import create_model

    torch.manual_seed(0)
    net = create_model("vgg13", width=0.125, input_size=56, embedding_dim=32).eval()
    opts = {"rise": {"masks": 8}}
    methods = ["channels", "channels:baseline=mean", "occlusion", "gradcam", "gradient", "rise", "random", "xcos"]
    r = ground_truth(net, pairs_file, tmp_path / "a", methods=methods, limit=6, progress=False, options=opts,
                     faces=str(pairs_file.parent))  # fmt: skip
    assert r["methods_skipped"] == {"xcos": "an xCos checkpoint (its pair head)"}
    assert r["pairs"]["used"] == 6 and set(PROTOCOLS) <= set(r)
    for rec in r["per_pair"]["part-swap"]:
        assert rec["part"] in PART_NAMES and set(rec["methods"]) == set(r["methods"])
    for rec in r["per_pair"]["patch"]:
        assert 0.3 < rec["planted_fraction"] < 0.8 and len(rec["curves"]["random order"]) == 20
        assert rec["curves"]["gradient"][0] == pytest.approx(rec["cos_after"], abs=1e-5)  # 0%: the planted pair
    again = ground_truth(net, pairs_file, None, methods=methods, limit=6, progress=False, options=opts,
                         faces=str(pairs_file.parent))  # fmt: skip
    assert again["per_pair"] == r["per_pair"]
    json.loads((tmp_path / "a" / "groundtruth.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert r["per_pair"]["part-swap"][0]["methods"]["channels:baseline=mean"]["n_scored"] >= 1
    with pytest.raises(ValueError, match="unknown attribution method 'lime'"):
        ground_truth(net, pairs_file, methods=["lime:x=1"], progress=False)
    with pytest.raises(ValueError, match="unknown protocol 'inpainting'"):
        ground_truth(net, pairs_file, protocols=["inpainting"], progress=False)


@pytest.mark.slow
def test_a_killed_run_continues_from_its_record_log_and_a_changed_command_is_refused(pairs_file, tmp_path):
    """The finished pairs are logged one line each; a run cut mid-line resumes to the uninterrupted result, and the
    same folder with other settings is one clear error."""
    from explainface.explanations.groundtruth import RECORDS
    from explainface.models import create_model

    torch.manual_seed(0)
    net = create_model("vgg13", width=0.125, input_size=56, embedding_dim=32).eval()
    kw = dict(methods=["occlusion", "gradient", "random"], limit=5, progress=False, faces=str(pairs_file.parent))
    whole = ground_truth(net, pairs_file, tmp_path / "a", **kw)
    log = tmp_path / "a" / RECORDS
    lines = log.read_text().splitlines()
    assert len(lines) == 1 + 5 and json.loads(lines[0])["settings"]["limit"] == 5
    log.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # two pairs done, a third cut
    calls = []
    import explainface.explanations.groundtruth as gt

    real = gt.swap_record
    gt.swap_record = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        resumed = ground_truth(net, pairs_file, tmp_path / "a", **kw)
    finally:
        gt.swap_record = real
    assert len(calls) == 3  # only the three unfinished pairs were run again
    assert resumed["per_pair"] == whole["per_pair"]
    assert len(log.read_text().splitlines()) == 1 + 5
    with pytest.raises(ValueError, match=r"other settings \(limit, seed"):
        ground_truth(net, pairs_file, tmp_path / "a", **{**kw, "limit": 4}, seed=1)


def test_a_face_carries_its_landmarks_into_the_crop(pairs_file):
    """PartSample.landmarks are the landmark file's points in the crop's pixels (here a 56 -> 112 resize)."""
    from explainface.parts.samples import face_sample
    from explainface.readers.images import find_images
    from explainface.readers.landmarks import read_landmarks

    image = sorted(find_images(pairs_file.parent))[0]
    pts = read_landmarks(image.with_suffix(".pts"))
    s = face_sample(image, 112, "none", landmarks="auto")
    assert s.source == "parts.png" and s.landmarks.shape == (68, 2) and s.landmarks.dtype == np.float64
    np.testing.assert_allclose(s.landmarks, (pts + 0.5) * 2 - 0.5, atol=1e-9)
    assert face_sample(image, 56, "none").landmarks == pytest.approx(pts)


def test_why_orders_its_methods_by_a_ground_truth_runs_hit_rates(pairs_file, tmp_path):
    from explainface.explanations.why_pipeline import checked_hit_rates, why
    from explainface.models import create_model
    from explainface.readers.images import find_images

    def rates(moved, everything):
        return {"moved": {"hit_rate": {"mean": moved}}, "all": {"hit_rate": {"mean": everything}}}

    summary = {"methods": {"channels": rates(0.2, 0.3), "gradient": rates(0.6, 0.5), "occlusion": rates(None, 0.4)}}
    gt = tmp_path / "groundtruth.json"
    gt.write_text(json.dumps({"part-swap": summary}))
    assert checked_hit_rates(gt) == {"channels": 0.2, "gradient": 0.6, "occlusion": 0.4}
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a groundtruth.json"):
        checked_hit_rates(bad)
    torch.manual_seed(0)
    net = create_model("vgg13", width=0.125, input_size=56, embedding_dim=32).eval()
    a, b = sorted(find_images(pairs_file.parent))[:2]
    res = why(net, a, b, tmp_path / "why", faces=str(pairs_file.parent), methods=["channels", "occlusion", "gradient"],
              checked=gt)  # fmt: skip
    assert res["methods"] == ["gradient", "occlusion", "channels"]
    assert res["checked"]["hit_rate"] == {"gradient": 0.6, "occlusion": 0.4, "channels": 0.2}
    saved = json.loads((tmp_path / "why" / "why.json").read_text())
    assert set(saved["parts"]["eyes"]) >= {"gradient", "occlusion", "channels"} and "_maps" not in saved

    from explainface.report.html import _why

    html = _why([{"kind": "true match", "summary": "s", "png_path": str(tmp_path / "why" / "why.png"),
                  "checked": res["checked"]}])  # fmt: skip
    assert "Checked against planted ground truth" in html and "gradient 60%" in html


@pytest.mark.slow
def test_the_why_command_runs_a_protocol_and_prints_its_table(pairs_file, tmp_path):
    import subprocess
    import sys

    from tests.checkpoints import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors", input_size=56)
    cmd = [sys.executable, "-m", "explainface", "why", "--model", str(ckpt), "--pairs", str(pairs_file),
           "--protocol", "part-swap", "--methods", "occlusion,occlusion:sides=each,random", "--limit", "4",
           "--faces", str(pairs_file.parent), "--out", str(tmp_path / "gt"), "--quiet"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "| occlusion:sides=each |" in res.stdout and "hit rate (all)" in res.stdout
    data = json.loads((tmp_path / "gt" / "groundtruth.json").read_text())
    assert data["methods"] == ["occlusion", "occlusion:sides=each", "random"] and data["patch"] is None
    assert (tmp_path / "gt" / "groundtruth.png").stat().st_size > 10_000
    bad = subprocess.run(cmd[:-5] + ["--methods", "lime", "--out", str(tmp_path / "x")], capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert bad.returncode == 1 and "unknown attribution method 'lime'" in bad.stderr and "Traceback" not in bad.stderr


def test_patch_curves_equal_one_restoration_per_order_and_orders_that_agree_share_a_curve():
    from explainface.explanations.attributions import PairContext, attribute
    from explainface.explanations.attributions.base import face_embedding
    from explainface.explanations.groundtruth import Face, _tensor, patch_pair, patch_record
    from explainface.explanations.insertion import decision_order_map, random_order_map, restore_curve
    from explainface.models import create_model
    from explainface.synthetic.generator import SyntheticFaces

    torch.manual_seed(0)
    net = create_model("vgg13", width=0.125, input_size=56, embedding_dim=32).eval()
    gen = SyntheticFaces(0, "easy")
    faces = [Face(s.image, s.parts.astype(np.int64), s.landmarks.astype(np.float64), f"id{i}")
             for i, s in enumerate(gen.sample(i, 0, 56) for i in range(2))]  # fmt: skip
    param = next(net.parameters())
    pair = patch_pair(net, faces[0], faces[1], faces[1], False, [0, 3], param)
    ctx = PairContext(net)
    methods = {"occlusion": ("occlusion", {}), "again": ("occlusion", {}), "gradient": ("gradient", {})}
    rec = patch_record(ctx, methods, pair, 3, threshold=0.5, seed=0)
    assert rec["curves"]["again"] == rec["curves"]["occlusion"]
    with torch.no_grad():
        eb = face_embedding(net, pair.images[1:2])[0]

    def score(batch):
        with torch.no_grad():
            return (face_embedding(net, _tensor(list(batch))) @ eb).numpy()

    from explainface.explanations.groundtruth import part_map

    for m in ("occlusion", "gradient"):
        a = attribute(m, ctx, pair.images, pair.labels, index=3)
        signed = a.maps[0] if a.maps is not None else part_map(a, pair.labels[0].numpy())
        order = decision_order_map(signed, pair.cos_after, 0.5)
        want = restore_curve(pair.planted, pair.original, order, score)
        np.testing.assert_allclose(rec["curves"][m], want, atol=1e-5)
    rand = restore_curve(pair.planted, pair.original, random_order_map((56, 56), [0, 3, 9]), score)
    np.testing.assert_allclose(rec["curves"]["random order"], rand, atol=1e-5)
