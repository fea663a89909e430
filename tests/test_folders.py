"""Identity folders (LFW layout): scan order and skips, decoding to normalised RGB tensors, bad files never crash."""

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from explainface.inputs import to_tensor
from explainface.readers.folders import FolderIndex, IdentityFolderDataset, scan_identity_folders
from explainface.readers.images import decode_image_rgb, jpeg_is_complete, read_image_rgb, resize_image
from explainface.synthetic import SyntheticFaces


def _face(identity: int, k: int = 0, size: int = 64) -> np.ndarray:
    return SyntheticFaces(0).sample(identity, k, size).image


def _write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.fixture
def tree(tmp_path) -> Path:
    """bob: 2 images + skippable files; alice: jpg + greyscale pgm; carol: bmp; 'empty' and hidden folders."""
    root = tmp_path / "faces"
    _write(root / "bob" / "bob_0002.png", _face(1, 1))
    _write(root / "bob" / "bob_0001.jpg", _face(1, 0))
    _write(root / "bob" / "bob_0001.parts.png", np.zeros((64, 64), np.uint8))
    _write(root / "bob" / ".bob_0003.jpg", _face(1, 2))
    (root / "bob" / "bob_0001.pts").write_text("version: 1\n")
    (root / "bob" / "notes.txt").write_text("not an image")
    _write(root / "alice" / "alice_0001.JPG", _face(2, 0))
    _write(root / "alice" / "alice_0002.pgm", cv2.cvtColor(_face(2, 1), cv2.COLOR_RGB2GRAY))
    _write(root / "carol" / "carol_0001.bmp", _face(3, 0))
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no images here")
    _write(root / ".cache" / "x.jpg", _face(4, 0))
    _write(root / "top_level.jpg", _face(5, 0))
    return root


def test_scan_sorts_identities_by_name_and_labels_them_by_position(tree):
    index = scan_identity_folders(tree)
    assert index.identities == ["alice", "bob", "carol"]
    assert index.items == [
        ("alice/alice_0001.JPG", 0),
        ("alice/alice_0002.pgm", 0),
        ("bob/bob_0001.jpg", 1),
        ("bob/bob_0002.png", 1),
        ("carol/carol_0001.bmp", 2),
    ]


def test_scan_skips_parts_maps_hidden_entries_non_images_root_files_and_empty_identities(tree):
    names = {Path(rel).name for rel, _ in scan_identity_folders(tree).items}
    assert not names & {"bob_0001.parts.png", ".bob_0003.jpg", "bob_0001.pts", "notes.txt", "x.jpg", "top_level.jpg"}
    assert "empty" not in scan_identity_folders(tree).identities


def test_scan_min_images_per_identity_drops_small_identities_and_renumbers(tree):
    index = scan_identity_folders(tree, min_images_per_identity=2)
    assert index.identities == ["alice", "bob"]
    assert [label for _, label in index.items] == [0, 0, 1, 1]


def test_scan_missing_root_raises_file_not_found_naming_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        scan_identity_folders(tmp_path / "no_such_root")


def test_scan_root_without_identity_folders_raises_value_error_naming_root(tmp_path):
    (tmp_path / "flat").mkdir()
    _write(tmp_path / "flat" / "a.jpg", _face(0))
    with pytest.raises(ValueError, match="flat.*no identity folders"):
        scan_identity_folders(tmp_path / "flat")
    (tmp_path / "flat" / "person").mkdir()
    with pytest.raises(ValueError, match="flat.*no identity folder holds images"):
        scan_identity_folders(tmp_path / "flat")


def test_dataset_returns_normalised_rgb_tensors_of_the_requested_size_and_labels(tree):
    ds = IdentityFolderDataset(tree, size=48)
    assert len(ds) == 5 and ds.num_classes == 3
    for i, (_, label) in enumerate(ds.index.items):
        image, got = ds[i]
        assert got == label and image.shape == (3, 48, 48) and image.dtype == torch.float32
        assert -1.0 <= image.min() and image.max() <= 1.0
    expected = to_tensor(cv2.resize(_face(1, 1), (48, 48), interpolation=cv2.INTER_AREA))  # bob_0002.png: lossless
    assert torch.equal(ds[3][0], expected)


def test_dataset_keeps_rgb_channel_order(tmp_path):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    _write(tmp_path / "r" / "a" / "red.png", red)
    image, _ = IdentityFolderDataset(tmp_path / "r", size=16)[0]
    assert image[0].eq(1).all() and image[1:].eq(-1).all()


def test_greyscale_pgm_becomes_three_equal_channels(tree):
    rgb = read_image_rgb(tree / "alice" / "alice_0002.pgm")
    assert rgb.shape == (64, 64, 3) and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_resize_uses_area_when_shrinking_and_linear_when_growing():
    image = _face(0, 0, 64)
    assert np.array_equal(resize_image(image, 32), cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA))
    assert np.array_equal(resize_image(image, 96), cv2.resize(image, (96, 96), interpolation=cv2.INTER_LINEAR))
    assert resize_image(image, 64) is image


def test_read_image_rgb_handles_non_ascii_paths(tmp_path):
    path = _write(tmp_path / "Zoë_Ünicode" / "José_0001.png", _face(0))
    assert np.array_equal(read_image_rgb(path), _face(0))


def test_read_image_rgb_returns_none_for_missing_empty_and_garbage_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    assert read_image_rgb(tmp_path / "missing.jpg") is None
    assert read_image_rgb(tmp_path / "empty.jpg") is None
    assert read_image_rgb(tmp_path / "garbage.jpg") is None


def test_jpeg_without_end_marker_is_truncated_even_when_zero_padded():
    data = _jpeg_bytes(_face(0))
    assert jpeg_is_complete(data) and jpeg_is_complete(data + b"\x00" * 7)
    assert not jpeg_is_complete(data[:-2] + b"\x00\x00\x00\x00")  # OpenCV 4.14 decodes this one without error
    with pytest.raises(ValueError, match="face.jpg: truncated JPEG"):
        decode_image_rgb(data[:-2] + b"\x00\x00\x00\x00", "face.jpg")


def test_jpeg_with_trailer_after_end_marker_is_complete():
    data = _jpeg_bytes(_face(0))
    assert jpeg_is_complete(data + b"camera trailer \xff\xd8 junk")
    assert decode_image_rgb(data + b"camera trailer", "x").shape == (64, 64, 3)


@pytest.fixture
def tree_with_bad_files(tree) -> Path:
    """alice_0001.JPG truncated to 60%, carol's bmp replaced by garbage."""
    jpg = tree / "alice" / "alice_0001.JPG"
    jpg.write_bytes(jpg.read_bytes()[: int(jpg.stat().st_size * 0.6)])
    (tree / "carol" / "carol_0001.bmp").write_bytes(b"\x00garbage" * 50)
    return tree


def test_truncated_jpeg_and_garbage_file_are_skipped_counted_and_named_in_a_warning(tree_with_bad_files):
    ds = IdentityFolderDataset(tree_with_bad_files, size=32)
    with pytest.warns(UserWarning) as caught:
        items = [ds[i] for i in range(len(ds))]
    truncated, garbage = (str(tree_with_bad_files / p) for p in ("alice/alice_0001.JPG", "carol/carol_0001.bmp"))
    assert ds.bad_files == {truncated, garbage}
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert truncated in messages[0] and "truncated JPEG" in messages[0] and garbage in messages[1]
    # the next readable item stands in, wrapping around from the last item to the first
    assert [label for _, label in items] == [0, 0, 1, 1, 0]
    assert torch.equal(items[0][0], items[1][0]) and torch.equal(items[4][0], items[1][0])


def test_bad_file_warns_once_per_process(tree_with_bad_files):
    ds = IdentityFolderDataset(tree_with_bad_files, size=32)
    with pytest.warns(UserWarning):
        ds[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[0]


def test_bad_files_never_crash_a_dataloader_loop_with_two_workers(tree_with_bad_files):
    ds = IdentityFolderDataset(tree_with_bad_files, size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [ds[i] for i in range(len(ds))]
    fresh = IdentityFolderDataset(tree_with_bad_files, size=32)
    batches = list(DataLoader(fresh, batch_size=2, num_workers=2))
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.stack([e[0] for e in expected]))
    assert torch.cat([b[1] for b in batches]).tolist() == [e[1] for e in expected]


def test_bad_raise_raises_value_error_naming_the_file(tree_with_bad_files):
    ds = IdentityFolderDataset(tree_with_bad_files, size=32, bad="raise")
    with pytest.raises(ValueError, match=r"alice_0001\.JPG.*truncated JPEG"):
        ds[0]
    with pytest.raises(ValueError, match=r"carol_0001\.bmp"):
        ds[4]
    assert ds[1][1] == 0


def test_dataset_with_only_bad_files_raises_runtime_error(tmp_path):
    (tmp_path / "r" / "a").mkdir(parents=True)
    (tmp_path / "r" / "a" / "x.jpg").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="all 1 items are bad"):
            IdentityFolderDataset(tmp_path / "r")[0]


def test_custom_loader_is_called_with_the_path_and_none_counts_as_bad(tree):
    calls = []

    def loader(path: str) -> np.ndarray | None:
        calls.append(path)
        return None if path.endswith(".pgm") else np.full((10, 20, 3), 255, np.uint8)

    ds = IdentityFolderDataset(scan_identity_folders(tree), size=16, loader=loader)
    with pytest.warns(UserWarning, match="alice_0002.pgm: loader returned no image"):
        image, label = ds[1]
    assert calls == [str(tree / "alice" / "alice_0002.pgm"), str(tree / "bob" / "bob_0001.jpg")]
    assert image.shape == (3, 16, 16) and image.eq(1).all() and label == 1


def test_dataset_accepts_a_prebuilt_index(tree):
    index = scan_identity_folders(tree)
    ds = IdentityFolderDataset(index)
    assert isinstance(ds.index, FolderIndex) and ds.index is index and ds.labels == [0, 0, 1, 1, 2]


def test_unknown_bad_policy_is_rejected(tree):
    with pytest.raises(ValueError, match="bad must be"):
        IdentityFolderDataset(tree, bad="ignore")
