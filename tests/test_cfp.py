"""CFP-FF and CFP-FP from the official release layout, through the same `PairList` as every pair source."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from explainface.readers.cfp import is_cfp, read_cfp_pairs
from explainface.readers.pairs import read_pairs
from realdata import real_data

IDS, FRONTAL, PROFILE, FOLDS = 6, 4, 2, 10


def make_release(root: Path, folds: int = FOLDS) -> Path:
    """A tiny CFP release: IDS people x (4 frontal + 2 profile), pair lists, 10 folds of 1 same + 1 diff each."""
    proto = root / "Protocol"
    (proto / "Split").mkdir(parents=True)
    f_lines, p_lines = [], []
    for person in range(1, IDS + 1):
        for kind, n, lines in (("frontal", FRONTAL, f_lines), ("profile", PROFILE, p_lines)):
            d = root / "Data" / "Images" / f"{person:03d}" / kind
            d.mkdir(parents=True)
            for k in range(1, n + 1):
                cv2.imwrite(str(d / f"{k:02d}.jpg"), np.full((40, 30, 3), 10 * person + k, np.uint8))
                lines.append(f"{len(lines) + 1} ../Data/Images/{person:03d}/{kind}/{k:02d}.jpg")
    (proto / "Pair_list_F.txt").write_text("\n".join(f_lines) + "\n")
    (proto / "Pair_list_P.txt").write_text("\n".join(p_lines) + "\n")
    for protocol in ("FF", "FP"):
        for f in range(1, folds + 1):
            d = proto / "Split" / protocol / f"{f:02d}"
            d.mkdir(parents=True)
            person = (f - 1) % IDS  # 0-based; F index of person p, frontal k: p * 4 + k; P index: p * 2 + k
            other = (person + 1) % IDS
            second_same = person * FRONTAL + 2 if protocol == "FF" else person * PROFILE + 1
            second_diff = other * FRONTAL + 1 if protocol == "FF" else other * PROFILE + 2
            (d / "same.txt").write_text(f"{person * FRONTAL + 1},{second_same}\n")
            (d / "diff.txt").write_text(f"{person * FRONTAL + 3},{second_diff}\n")
    return root


def test_cfp_ff_pairs_two_frontal_images_in_ten_folds(tmp_path):
    pl = read_cfp_pairs(make_release(tmp_path / "cfp"), "FF")
    assert len(pl) == 2 * FOLDS and np.bincount(pl.folds).tolist() == [2] * FOLDS
    assert pl.same.tolist() == [True, False] * FOLDS
    paths = [pl.images[i].path for i in np.concatenate([pl.a, pl.b])]
    assert all(p.parent.name == "frontal" for p in paths)
    # fold 1: person 001 frontal 01 with frontal 02 (same), frontal 03 with person 002's frontal 01 (diff)
    first = [(pl.images[pl.a[k]].path.parts[-3:], pl.images[pl.b[k]].path.parts[-3:]) for k in (0, 1)]
    assert first == [(("001", "frontal", "01.jpg"), ("001", "frontal", "02.jpg")),
                     (("001", "frontal", "03.jpg"), ("002", "frontal", "01.jpg"))]  # fmt: skip


def test_cfp_fp_pairs_a_frontal_with_a_profile_image(tmp_path):
    root = make_release(tmp_path / "cfp")
    pl = read_cfp_pairs(root / "Protocol", "fp")
    assert all(pl.images[i].path.parent.name == "frontal" for i in pl.a)
    assert all(pl.images[i].path.parent.name == "profile" for i in pl.b)
    assert pl.images[pl.b[0]].path.parts[-3:] == ("001", "profile", "01.jpg")
    assert pl.source.startswith("CFP-FP")


def test_every_path_a_user_would_try_names_the_protocol(tmp_path):
    root = make_release(tmp_path / "cfp")
    ff = read_pairs(root / "Protocol" / "Split" / "FF")
    assert read_pairs(root, protocol="FF").same.tolist() == ff.same.tolist() and ff.source.startswith("CFP-FF")
    assert is_cfp(root) and is_cfp(root / "Protocol") and is_cfp(root / "Protocol/Split/FP")
    assert not is_cfp(tmp_path)
    with pytest.raises(ValueError, match="say which: protocol FF"):
        read_pairs(root / "Protocol")
    with pytest.raises(ValueError, match="FF or FP"):
        read_pairs(root, protocol="PP")
    with pytest.raises(ValueError, match="FF protocol folder, but protocol='FP'"):
        read_cfp_pairs(root / "Protocol/Split/FF", "FP")
    with pytest.raises(ValueError, match="not a CFP release"):
        read_pairs(tmp_path / "cfp" / "Data")


def test_malformed_or_inconsistent_cfp_files_are_named_with_the_line(tmp_path):
    root = make_release(tmp_path / "cfp")
    same = root / "Protocol/Split/FF/03/same.txt"
    same.write_text("9,10\n5;6\n")
    with pytest.raises(ValueError, match=r"03/same.txt:2: expected '<index>,<index>'"):
        read_cfp_pairs(root, "FF")
    same.write_text("9,999\n")
    with pytest.raises(ValueError, match=r"03/same.txt:1: index 999 is not in .*Pair_list_F.txt"):
        read_cfp_pairs(root, "FF")
    same.write_text("9,10\n")
    (root / "Data/Images/001/frontal/02.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"(?s)1 image\(s\) not found.*001/frontal/02.jpg"):
        read_cfp_pairs(root, "FF")
    (root / "Protocol/Pair_list_P.txt").write_text("1 a.jpg\nx b.jpg\n")
    with pytest.raises(ValueError, match=r"Pair_list_P.txt:2: expected '<index> <image path>'"):
        read_cfp_pairs(root, "FP")


def test_verify_crops_a_nested_layout_file_by_file_and_runs_the_cfp_protocol(tmp_path):
    from checkpoints import tiny_checkpoint
    from explainface.evaluate.verification_pipeline import verify

    root = make_release(tmp_path / "cfp")
    ckpt = tiny_checkpoint(tmp_path / "ckpt.safetensors", input_size=112)
    res = verify(ckpt, root / "Protocol", tmp_path / "out", protocol="FP", detector="haar", progress=False)
    assert res["pairs"] == 2 * FOLDS and res["official_folds"] and res["pairs_source"].startswith("CFP-FP")
    crops = sorted((tmp_path / "out").rglob("*.jpg"))
    assert any(p.parts[-2:] == ("profile", "01.jpg") for p in crops)  # the nested layout is kept in the cache


def test_the_real_cfp_release_has_both_protocols_in_ten_folds_of_350_plus_350():
    cfp = real_data("cfp")
    for protocol in ("FF", "FP"):
        pl = read_pairs(cfp / "Protocol", protocol=protocol)
        assert len(pl) == 7000 and np.bincount(pl.folds).tolist() == [700] * 10
        assert int(pl.same.sum()) == 3500
        for f in range(10):
            assert int(pl.same[pl.folds == f].sum()) == 350
        kinds_b = {pl.images[i].path.parent.name for i in pl.b}
        assert {pl.images[i].path.parent.name for i in pl.a} == {"frontal"}
        assert kinds_b == ({"frontal"} if protocol == "FF" else {"profile"})
