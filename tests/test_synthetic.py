"""The synthetic face generator (docs/method.md §10): determinism, identities, landmarks vs part masks."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from explainface.parts.labels import LANDMARK_GROUPS, PART_INDEX, PART_NAMES
from explainface.synthetic import (
    HELDOUT_FIRST_IDENTITY,
    SyntheticFaceDataset,
    SyntheticFaces,
    identity_numbers,
)
from explainface.synthetic.face_model import Shape

SHAPE_FIELDS = [f for f in Shape.__dataclass_fields__]


def _shape_vector(faces: SyntheticFaces, identity: int) -> np.ndarray:
    s = faces.identity(identity).shape
    return np.array([getattr(s, f) for f in SHAPE_FIELDS])


def test_same_seed_identity_and_index_give_identical_samples_in_any_order():
    a = SyntheticFaces(seed=3)
    b = SyntheticFaces(seed=3)
    first = a.sample(7, 2, 96)
    for i in range(5):  # render others first: no hidden state may leak into (7, 2)
        b.sample(i, i, 96)
    second = b.sample(7, 2, 96)
    assert np.array_equal(first.image, second.image)
    assert np.array_equal(first.landmarks, second.landmarks)
    assert np.array_equal(first.parts, second.parts)


def test_different_seeds_give_different_people():
    a, b = SyntheticFaces(seed=0), SyntheticFaces(seed=1)
    assert not np.allclose(_shape_vector(a, 0), _shape_vector(b, 0))
    assert not np.array_equal(a.sample(0, 0, 64).image, b.sample(0, 0, 64).image)


def test_samples_of_one_identity_differ_by_nuisance():
    f = SyntheticFaces(seed=0)
    s0, s1 = f.sample(4, 0, 112), f.sample(4, 1, 112)
    assert not np.array_equal(s0.image, s1.image)
    assert np.abs(s0.landmarks - s1.landmarks).max() > 1.0  # pose moved the face


def test_identity_parameters_differ_between_identities_and_ignore_difficulty():
    easy, hard = SyntheticFaces(0, "easy"), SyntheticFaces(0, "hard")
    vecs = np.stack([_shape_vector(easy, i) for i in range(50)])
    assert np.allclose(vecs[0], _shape_vector(hard, 0))
    d = np.linalg.norm(vecs[:, None] - vecs[None], axis=-1)
    assert d[~np.eye(50, dtype=bool)].min() > 0.01


def _procrustes(a: np.ndarray, b: np.ndarray) -> float:
    """Residual of the best similarity transform of b onto a (both [68, 2]), relative to a's size."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    u, s, vt = np.linalg.svd(b.T @ a)
    return float(np.sqrt(max(0.0, 2 - 2 * s.sum())))


def test_same_identity_landmark_geometry_is_closer_than_other_identities():
    f = SyntheticFaces(seed=0, difficulty="medium")
    lms = {i: [f.sample(i, k, 112).landmarks.astype(np.float64) for k in range(6)] for i in range(12)}
    same = [_procrustes(lms[i][k], lms[i][k + 1]) for i in range(12) for k in range(5)]
    diff = [_procrustes(lms[i][0], lms[j][0]) for i in range(12) for j in range(12) if i < j]
    assert np.median(same) < np.median(diff)


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_every_landmark_group_falls_on_its_part_mask(difficulty):
    f = SyntheticFaces(seed=1, difficulty=difficulty)
    expected = {
        "right_brow": "eyes",
        "left_brow": "eyes",
        "right_eye": "eyes",
        "left_eye": "eyes",
        "nose_bridge": "nose",
        "nose_base": "nose",
        "outer_lips": "mouth",
        "inner_lips": "mouth",
    }
    kernel = np.ones((3, 3), np.uint8)  # 1-pixel tolerance: points on a polygon edge
    for n in range(40):
        s = f.sample(n % 10, n, 112)
        masks = {name: cv2.dilate((s.parts == PART_INDEX[name]).astype(np.uint8), kernel) for name in PART_INDEX}
        face = cv2.dilate((s.parts != 0).astype(np.uint8), kernel)
        for group, part in expected.items():
            for i in LANDMARK_GROUPS[group]:
                x, y = np.round(s.landmarks[i]).astype(int)
                if 0 <= x < 112 and 0 <= y < 112:
                    assert masks[part][y, x], (n, group, i, PART_NAMES[s.parts[y, x]])
        for i in range(6, 11):  # chin and jaw line below the mouth
            x, y = np.round(s.landmarks[i]).astype(int)
            if 0 <= x < 112 and 0 <= y < 112:
                assert masks["jaw"][y, x], (n, i)
        for i in LANDMARK_GROUPS["jaw"]:
            x, y = np.round(s.landmarks[i]).astype(int)
            if 0 <= x < 112 and 0 <= y < 112:
                assert face[y, x], (n, i)


def test_every_part_appears_with_paper_layout():
    s = SyntheticFaces(seed=0, difficulty=0.0).sample(0, 0, 112)
    present = set(np.unique(s.parts).tolist())
    assert present == set(range(len(PART_NAMES)))

    def centre_y(name):
        return np.nonzero(s.parts == PART_INDEX[name])[0].mean()

    ys = [centre_y(p) for p in ("forehead", "eyes", "nose", "mouth", "jaw")]
    assert ys == sorted(ys)  # top to bottom on an upright face


def test_geometry_scales_with_the_requested_size():
    f = SyntheticFaces(seed=2)
    small, big = f.sample(3, 4, 112), f.sample(3, 4, 224)
    # pixel centres at integers: x_224 + 0.5 = 2 (x_112 + 0.5)
    np.testing.assert_allclose(big.landmarks + 0.5, 2 * (small.landmarks + 0.5), atol=1e-3)
    down = cv2.resize(big.parts, (112, 112), interpolation=cv2.INTER_NEAREST)
    assert (down == small.parts).mean() > 0.95


def test_image_follows_the_part_masks_lips_are_redder_than_cheeks():
    f = SyntheticFaces(seed=5, difficulty=0.3)
    beardless = [i for i in range(60) if f.identity(i).look.beard == 0][:30]  # beards cover lips
    redder = 0
    for n in beardless:
        s = f.sample(n, 0, 112)
        img = s.image.astype(np.float64) + 1.0
        rg = img[..., 0] / img[..., 1]
        redder += rg[s.parts == PART_INDEX["mouth"]].mean() > 1.15 * rg[s.parts == PART_INDEX["cheek"]].mean()
    assert redder >= 27


def test_invalid_arguments_are_rejected_with_messages():
    with pytest.raises(ValueError, match="difficulty"):
        SyntheticFaces(0, "impossible")
    with pytest.raises(ValueError, match="size"):
        SyntheticFaces(0).sample(0, 0, 8)
    with pytest.raises(ValueError, match="identity"):
        SyntheticFaces(0).sample(-1, 0)


def test_train_and_heldout_identities_are_disjoint():
    train = set(identity_numbers("train", 500))
    held = set(identity_numbers("heldout", 500))
    assert not train & held and min(held) == HELDOUT_FIRST_IDENTITY


def test_dataset_items_labels_and_annotations():
    ds = SyntheticFaceDataset(4, 3, size=64, seed=0, annotations=True)
    assert len(ds) == 12 and ds.num_classes == 4
    item = ds[7]
    assert item["label"] == 2 and item["index"] == 1
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["landmarks"].shape == (68, 2) and item["parts"].shape == (64, 64)
    with pytest.raises(IndexError):
        ds[12]


def test_dataloader_workers_give_the_same_batches_as_the_main_process():
    ds = SyntheticFaceDataset(3, 4, size=48, seed=9, split="heldout")
    single = torch.cat([x for x, _ in DataLoader(ds, batch_size=4)])
    multi = torch.cat([x for x, _ in DataLoader(ds, batch_size=4, num_workers=2)])
    assert torch.equal(single, multi)
