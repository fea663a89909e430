"""The `report` command: checkpoints in, one self-contained report.html (with everything behind it) out."""

from __future__ import annotations

import json
import re

import pytest

from checkpoints import tiny_checkpoint
from explainface.report.html import SECTIONS


@pytest.mark.slow
def test_report_compares_a_model_with_its_baseline_on_exported_synthetic_faces(tmp_path):
    from explainface.cli import main

    a = tiny_checkpoint(tmp_path / "a.safetensors", seed=0)
    b = tiny_checkpoint(tmp_path / "b.safetensors", seed=1)
    out = tmp_path / "rep"
    assert main(["report", "--model", str(a), "--baseline", str(b), "--out", str(out), "--images", "20",
                 "--runs", "2", "--quiet"]) == 0  # fmt: skip
    html = (out / "report.html").read_text()
    for sid, _ in SECTIONS:
        assert f'id="{sid}"' in html
    data = json.loads((out / "report.json").read_text())
    assert [m["label"].split(":")[0] for m in data["models"]] == ["model", "baseline"]
    for role in ("model", "baseline"):
        assert (out / role / "verify" / "verification.json").is_file()
        ex = json.loads((out / role / "explain" / "explainability.json").read_text())
        assert ex["images"] == 400  # the exported held-out faces: 40 identities x 10
        assert (out / role / "figures" / "gallery.png").is_file()
        assert (out / role / "figures" / "channel_dictionary.png").is_file()
    # the comparison figures come once, from the model's run with the baseline
    assert (out / "model" / "figures" / "feature_maps.png").is_file()
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', html)
    assert len(images) >= 6  # 2 ROC + 2 galleries + 2 dictionaries (+ feature maps, Grad-CAM)
    acc = data["models"][0]["verification"]["accuracy_mean"]
    assert f"{100 * acc:.2f}%" in html
    # "Why these match": the model's most confident true match, false match and false non-match, each explained
    kinds = [w["kind"].rsplit(": ", 1)[1] for w in data["why"]]
    assert kinds and set(kinds) <= {"true match", "false match", "false non-match"}
    for w in data["why"]:
        assert w["summary"].startswith(("same person", "different people"))
        assert (out / "model" / "why" / w["kind"].rsplit(": ", 1)[1].replace(" ", "_") / "why.json").is_file()


def test_report_export_is_reused_when_the_settings_match(tmp_path):
    from explainface.report.build import export_heldout_faces

    out = export_heldout_faces(tmp_path / "faces", 112, identities=20, per_identity=2, progress=False)
    stamp = (out / "meta.json").stat().st_mtime_ns
    export_heldout_faces(tmp_path / "faces", 112, identities=20, per_identity=2, progress=False)
    assert (out / "meta.json").stat().st_mtime_ns == stamp
    export_heldout_faces(tmp_path / "faces", 112, identities=20, per_identity=3, progress=False)
    assert json.loads((out / "meta.json").read_text())["counts"]["per_identity"] == 3


@pytest.mark.slow
def test_a_single_model_on_generator_faces_needs_no_pairs(tmp_path):
    from explainface.report.build import build_report

    ckpt = tiny_checkpoint(tmp_path / "a.safetensors")
    path = build_report(ckpt, tmp_path / "rep", faces="synthetic", n_faces=10, runs=2, progress=False)
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert len(data["models"]) == 1 and data["models"][0]["verification"] is None
    assert data["models"][0]["explainability"]["images"] == 200  # the generator's default: max(N, 200) faces
    html = path.read_text()
    for sid, _ in SECTIONS:
        assert f'id="{sid}"' in html
    assert not (tmp_path / "rep" / "model" / "verify").exists()
