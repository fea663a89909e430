"""`why`: a verification decision explained by face parts (channel-group ablation and region occlusion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explainface.explanations.why import (
    PARTS,
    ReferenceMaps,
    channel_contributions,
    channel_variants,
    explain_pair,
    occlusion_contributions,
    part_masks_of,
    summary_line,
)
from explainface.models import create_model
from explainface.parts.labels import PART_NAMES


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = create_model("vgg13", width=0.125, input_size=56, embedding_dim=32).eval()
    return m.double()


def _pair(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 56, 56, generator=g, dtype=torch.float64) * 2 - 1


def _labels():
    from explainface.synthetic.generator import SyntheticFaces

    faces = SyntheticFaces(0, "easy")
    return torch.from_numpy(np.stack([faces.sample(5, k, 56).parts for k in (0, 1)]).astype(np.int64))


def _reference(net):
    return ReferenceMaps.of(net, [_pair(7), _pair(8)])


def naive_flip_cosine(net, maps4):
    """Cosine of (A, A', B, B') target maps, each through the head on its own, float64."""
    e = [net.forward_head(m[None]).double()[0] for m in maps4]
    a, b = e[0] + e[1], e[2] + e[3]
    return float((a / a.norm()) @ (b / b.norm()))


def test_channel_ablation_matches_a_per_view_loop_and_removing_nothing_changes_nothing(net):
    x = _pair()
    ref = _reference(net)
    sets = [[], [0, 3, 5], list(range(7)), [1]]
    fast = channel_variants(net, x, ref, sets)
    with torch.no_grad():
        views = [x[0], torch.flip(x[0], dims=[-1]), x[1], torch.flip(x[1], dims=[-1])]
        maps = [net.forward_features(v[None])[0] for v in views]
        emb = net(torch.stack(views))
    plain = F.normalize(emb[0] + emb[1], dim=0) @ F.normalize(emb[2] + emb[3], dim=0)
    assert float(fast[0]) == pytest.approx(float(plain), abs=1e-12)
    means = [ref.mean, ref.mean_mirrored, ref.mean, ref.mean_mirrored]
    for v, chans in enumerate(sets):
        edited = []
        for m, mu in zip(maps, means):
            m = m.clone()
            for c in chans:
                m[c] = mu[c]
            edited.append(m)
        with torch.no_grad():
            assert float(fast[v]) == pytest.approx(naive_flip_cosine(net, edited), abs=1e-10)


def test_ablating_every_channel_gives_the_cosine_of_the_reference_mean_features(net):
    ref = _reference(net)
    c = ref.mean.shape[0]
    cos = channel_variants(net, _pair(), ref, [list(range(c))])
    with torch.no_grad():
        want = naive_flip_cosine(net, [ref.mean, ref.mean_mirrored, ref.mean, ref.mean_mirrored])
    assert float(cos[0]) == pytest.approx(want, abs=1e-10) and want == pytest.approx(1.0, abs=1e-10)


def test_contributions_take_one_batched_pass_per_pair(net, monkeypatch):
    calls = {"head": 0, "features": 0, "forward": 0}
    head, feats, fwd = net.forward_head, net.forward_features, type(net).forward

    def count(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)

        return wrapped

    ref = _reference(net)
    monkeypatch.setattr(net, "forward_head", count("head", head))
    monkeypatch.setattr(net, "forward_features", count("features", feats))
    parts = {c: PARTS[c % len(PARTS)] for c in range(ref.mean.shape[0])}
    channel_contributions(net, _pair(), ref, parts)
    assert calls == {"head": 1, "features": 1, "forward": 0}
    monkeypatch.setattr(type(net), "forward", count("forward", fwd))
    calls.update(head=0, features=0, forward=0)
    occlusion_contributions(net, _pair(), _labels())
    assert calls["forward"] == 1


def test_occlusion_covers_exactly_the_part_masks(net, monkeypatch):
    from explainface.explanations import why

    seen = []
    original = why.occlusion_variants

    def spy(model, images, masks):
        seen.extend(masks)
        return original(model, images, masks)

    monkeypatch.setattr(why, "occlusion_variants", spy)
    labels = _labels()
    occlusion_contributions(net, _pair(), labels)
    assert not seen[0].any()
    for p, m in zip(PARTS, seen[1:]):
        assert torch.equal(m, labels == PART_NAMES.index(p)), p
    assert torch.equal(part_masks_of(labels)["eyes"], labels == PART_NAMES.index("eyes"))


def test_identical_faces_get_no_contribution_from_occlusion_of_both(net):
    x = _pair()[:1].repeat(2, 1, 1, 1)
    labels = _labels()[:1].repeat(2, 1, 1)
    cos, parts = occlusion_contributions(net, x, labels)
    assert cos == pytest.approx(1.0, abs=1e-10)
    for p, v in parts.items():
        assert v is None or v == pytest.approx(0.0, abs=1e-10), p


@pytest.mark.slow
def test_why_json_shape_and_summary(net):
    ref = _reference(net)
    parts = {c: ("eyes" if c < 4 else "nose" if c < 6 else None) for c in range(ref.mean.shape[0])}
    res = explain_pair(net, _pair(), _labels(), ref, parts, threshold=0.3)
    assert set(res) >= {"cosine", "threshold", "decision", "parts"} and set(res["parts"]) == set(PARTS)
    assert res["parts"]["eyes"]["n_channels"] == 4 and res["parts"]["jaw"]["channels"] is None
    assert res["decision"] == ("same" if res["cosine"] >= 0.3 else "different")
    line = summary_line(res)
    assert line.startswith(("same person", "different people")) and "eyes" in line


@pytest.mark.slow
def test_the_why_command_explains_a_pair_and_writes_json_png_and_a_summary(tmp_path):
    import json
    import subprocess
    import sys

    import cv2
    from tests.checkpoints import tiny_checkpoint

    from explainface.synthetic.export import export_synthetic

    export_synthetic(tmp_path / "faces", identities=0, per_identity=2, size=56, heldout_identities=2, progress=False)
    imgs = sorted((tmp_path / "faces" / "heldout").glob("*/*.jpg"))
    ckpt = tiny_checkpoint(tmp_path / "m.safetensors", input_size=56)
    cmd = [sys.executable, "-m", "explainface", "why", "--model", str(ckpt), str(imgs[0]), str(imgs[1]), "--out",
           str(tmp_path / "why"), "--faces", str(tmp_path / "faces" / "heldout"), "--threshold", "0.5"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads((tmp_path / "why" / "why.json").read_text())
    assert out["decision"] in ("same", "different") and out["threshold"] == 0.5
    assert set(out["parts"]) == set(PARTS) and out["label_sources"] == ["parts.png", "parts.png"]
    assert out["summary"] in res.stdout and out["channel_parts_from"].startswith("measured on 4 faces")
    assert any(v["occlusion"] is not None for v in out["parts"].values())
    img = cv2.imread(str(tmp_path / "why" / "why.png"))
    assert img is not None and img.shape[1] >= 600


@pytest.mark.parametrize("crop", ["none", "chip"])
def test_a_face_without_landmarks_is_named(tmp_path, crop):
    import cv2

    from explainface.faces.detect import dlib_available
    from explainface.parts.samples import face_sample

    path = tmp_path / "plain.png"
    cv2.imwrite(str(path), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="plain.png: no .pts"):
        face_sample(path, 56, crop=crop, landmarks="file")
    if crop == "chip" and not dlib_available():
        pytest.skip("dlib is not installed (pip install dlib-bin)")
    with pytest.raises(ValueError, match="plain.png: no landmarks file and dlib found no face"):
        face_sample(path, 56, crop=crop, landmarks="auto")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        face_sample(tmp_path / "broken.jpg", 56, crop=crop)


@pytest.mark.slow
def test_the_why_command_measures_faithfulness_over_pairs(tmp_path):
    import json
    import subprocess
    import sys

    from tests.checkpoints import tiny_checkpoint

    from explainface.synthetic.export import export_synthetic

    export_synthetic(tmp_path / "faces", identities=0, per_identity=3, size=56, heldout_identities=4, progress=False)
    held = tmp_path / "faces" / "heldout"
    ckpt = tiny_checkpoint(tmp_path / "m.safetensors", input_size=56)
    cmd = [sys.executable, "-m", "explainface", "why", "--model", str(ckpt), "--pairs", str(held / "pairs.txt"),
           "--faces", str(held), "--limit", "6", "--out", str(tmp_path / "f"), "--quiet"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((tmp_path / "f" / "faithfulness.json").read_text())
    assert data["pairs"]["used"] == 6 and "removing by channels" in res.stdout and "rank agreement" in res.stdout
    assert (tmp_path / "f" / "deletion_curves.png").is_file()
    # two networks compared on the same pairs (here one with itself: every paired difference is 0)
    f = str(tmp_path / "f" / "faithfulness.json")
    cmp = subprocess.run([sys.executable, "scripts/compare_faithfulness.py", f, f], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert cmp.returncode == 0, cmp.stderr[-2000:]
    res = json.loads((tmp_path / "f" / "compare_faithfulness.json").read_text())
    assert res["pairs"] == 6 and all(v["paired"]["diff"] == 0 for m in res["margins"].values() for v in m.values())
    bad = subprocess.run([*cmd[:6], "a.jpg", "--pairs", str(held / "pairs.txt"), "--out", str(tmp_path / "g")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "either two images or --pairs" in bad.stderr
