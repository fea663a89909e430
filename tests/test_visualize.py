"""The figures of docs/method.md §8 (gallery, feature maps, channel dictionary, Grad-CAM panel) and the `visualize`
command."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest
import torch

from explainface import tiles
from explainface.cli.visualize import add_visualize_parser, parse_channels
from explainface.explanations import figures
from explainface.explanations.overlay import top_overlay
from explainface.explanations.visualize import (
    DEFAULT_CHANNELS,
    load_faces,
    read_dictionary,
    visualize,
)
from explainface.models import create_model
from explainface.parts.labels import PART_NAMES
from explainface.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces

SIZE = 56


def small_model(seed: int = 0, size: int = SIZE):
    torch.manual_seed(seed)
    return create_model("vgg13", width=0.125, input_size=size, target_size=size // 8, embedding_dim=32).eval()


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def people():
    gen = SyntheticFaces(0)
    samples = [gen.sample(HELDOUT_FIRST_IDENTITY + i, 0, SIZE) for i in range(4)]
    return [s.image for s in samples], [s.parts for s in samples]


def read_png(path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} is not a readable PNG"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def tile(png: np.ndarray, grid: tiles.TileGrid, r: int, c: int, size: int = SIZE) -> np.ndarray:
    """Tile (r, c) of a figure resized to the face size."""
    x0, y0, x1, y1 = grid.box_px(r, c)
    return cv2.resize(png[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def differs(shown: np.ndarray, expected: np.ndarray) -> float:
    """Mean absolute difference after a slight blur: a figure tile is the picture resampled twice."""
    blur = [cv2.GaussianBlur(x.astype(np.float32), (5, 5), 1.0) for x in (shown, expected)]
    return float(np.abs(blur[0] - blur[1]).mean())


def is_blank(region: np.ndarray) -> bool:
    return bool((region >= 250).all())


def pitch_px(grid: tiles.TileGrid) -> tuple[int, int]:
    """Pixels one more column / one more row adds to a figure."""
    return round((grid.tile + grid.hgap) * tiles.DPI), round((grid.tile + grid.vgap) * tiles.DPI)


def test_gallery_grows_by_one_tile_per_person_and_per_channel(tmp_path, model, people):
    images = people[0]
    a = read_png(figures.channel_gallery(model, images[:2], [0, 1], out_png=tmp_path / "a.png"))
    b = read_png(figures.channel_gallery(model, images[:4], [0, 1, 2], out_png=tmp_path / "b.png"))
    dx, dy = pitch_px(figures.channel_gallery_grid(1, 1))
    assert b.shape[1] - a.shape[1] == 2 * dx
    assert b.shape[0] - a.shape[0] == dy


def test_gallery_tile_shows_that_channel_on_that_person(tmp_path, model, people):
    images = people[0][:3]
    channels = [5, 11]
    png = read_png(figures.channel_gallery(model, images, channels, out_png=tmp_path / "g.png"))
    maps = figures.layer_maps(model, images)
    grid = figures.channel_gallery_grid(len(channels), len(images))
    for r in range(len(channels)):
        for c in range(len(images)):
            shown = tile(png, grid, r, c)
            errors = {
                (rr, cc): differs(shown, top_overlay(images[cc], maps[cc, channels[rr]]))
                for rr in range(len(channels))
                for cc in range(len(images))
            }
            assert min(errors, key=errors.get) == (r, c)
            assert errors[(r, c)] < 5


def test_gallery_rejects_a_channel_the_layer_does_not_have(tmp_path, model, people):
    with pytest.raises(ValueError, match="no channel 999"):
        figures.channel_gallery(model, people[0][:2], [1, 999], out_png=tmp_path / "g.png")


def test_top_channels_are_the_most_active_on_average():
    maps = torch.zeros(2, 5, 3, 3)
    maps[:, 3] = 2.0
    maps[0, 1] = 3.0  # mean 1.5 over the two images
    maps[1, 4] = 1.0  # mean 0.5
    assert figures.top_channels(maps, 3) == [3, 1, 4]


def test_feature_maps_have_a_row_per_network_and_a_column_per_map(tmp_path, model, people):
    image = people[0][0]
    one = read_png(figures.feature_map_comparison({"a": model}, image, out_png=tmp_path / "1.png", channels=4))
    two = read_png(
        figures.feature_map_comparison(
            {"a": model, "b": small_model(1)}, image, out_png=tmp_path / "2.png", channels=[0, 2, 4, 6, 8, 10]
        )  # fmt: skip
    )
    dx, dy = pitch_px(figures.feature_map_grid(1, 1))
    assert two.shape[0] - one.shape[0] == dy
    assert two.shape[1] - one.shape[1] == 2 * dx
    grid = figures.feature_map_grid(2, 6)
    for r in range(2):
        assert differs(tile(two, grid, r, 0), image) < 5  # the face first
        for c in range(1, 7):
            assert not is_blank(tile(two, grid, r, c))


def test_feature_maps_share_one_colour_scale_within_a_row(tmp_path, people):
    """A channel scaled down by 4 looks 4 times darker than the row's maximum, not rescaled to full range."""
    net = small_model()
    image = people[0][0]
    maps = figures.layer_maps(net, [image])[0]
    strong, weak = figures.top_channels(maps[None], 2)
    last_conv = net.features[-2]
    with torch.no_grad():  # the target ReLU follows the last conv: scaling its filter scales the map
        last_conv.weight[weak] *= 0.25
        last_conv.bias[weak] *= 0.25
    png = read_png(figures.feature_map_comparison({"net": net}, image, out_png=tmp_path / "f.png",
                                                  channels=[strong, weak]))  # fmt: skip
    grid = figures.feature_map_grid(1, 2)
    from matplotlib import colormaps

    low = np.array(colormaps[figures.MAP_CMAP](0.0)[:3]) * 255
    dist = [np.linalg.norm(tile(png, grid, 0, c).astype(float) - low, axis=2).mean() for c in (1, 2)]
    assert dist[1] < 0.6 * dist[0]


def dictionary_entries():
    return [
        {"channel": 3, "part": "eyes", "frequency": 0.9, "active_images": 10},
        {"channel": 7, "part": "eyes", "frequency": 0.6, "active_images": 10},
        {"channel": 12, "part": "nose", "frequency": 0.5, "active_images": 4},
        {"channel": 20, "part": None, "frequency": None, "active_images": 0},
    ]


def test_channel_dictionary_figure_fills_the_rows_of_parts_with_channels_only(tmp_path, model, people):
    images, labels = people
    png = read_png(
        figures.channel_dictionary_figure(
            dictionary_entries(), model, images, out_png=tmp_path / "d.png", per_part=3, labels=labels
        )  # fmt: skip
    )
    grid = figures.dictionary_grid(3)
    assert png.shape[:2] == (round(grid.size[1] * tiles.DPI), round(grid.size[0] * tiles.DPI))
    parts = list(PART_NAMES[1:])
    filled = {(parts.index("eyes"), 0), (parts.index("eyes"), 1), (parts.index("nose"), 0)}
    for r in range(len(parts)):
        for c in range(3):
            x0, y0, x1, y1 = grid.box_px(r, c)
            region = png[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
            if (r, c) in filled:
                assert not is_blank(region)
            elif c > 0:  # the first tile of an empty part holds the "no channel" note
                assert is_blank(region), (parts[r], c)
            else:
                assert not is_blank(region) and (region >= 250).mean() > 0.9, parts[r]


def test_dictionary_example_is_the_face_whose_mask_hits_the_part():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, :2, :2] = masks[1, 4:6, 4:6] = masks[2, 6:, 6:] = True
    labels = torch.zeros(3, 8, 8, dtype=torch.uint8)
    labels[:, 4:6, 4:6] = PART_NAMES.index("nose")
    strength = torch.zeros(3, 2, 2)
    strength[2] = 5.0  # face 2 is the strongest, but its mask misses the nose
    assert figures._example_image(masks, strength, "nose", labels) == 1
    assert figures._example_image(masks, strength, "nose", None) == 2


def test_similarity_panel_shows_the_faces_and_a_row_per_network(tmp_path, people):
    a, b = people[0][:2]
    heat = np.linspace(0, 1, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    one = read_png(figures.similarity_panel(a, b, (0.5, heat, heat), tmp_path / "1.png"))
    two = read_png(figures.similarity_panel(a, b, {"x": (0.5, heat, heat), "y": (0.1, heat, heat)}, tmp_path / "2.png"))
    grid = figures.similarity_grid(2)
    assert two.shape[0] - one.shape[0] == pitch_px(grid)[1] and two.shape[1] == one.shape[1]
    for r in range(2):
        assert differs(tile(two, grid, r, 0), a) < 5
        assert differs(tile(two, grid, r, 1), b) < 5


@pytest.mark.slow
def test_visualize_writes_every_figure_for_synthetic_faces(tmp_path, model):
    d = tmp_path / "explainability.json"
    d.write_text(json.dumps({"layer": model.target_layer, "channels": dictionary_entries()}))
    written = visualize(model, "synthetic", tmp_path / "out", baseline=small_model(1), n_people=3, dictionary=d)
    assert set(written) == {"gallery", "feature_maps", "gradcam", "channel_dictionary"}
    for path in written.values():
        assert path.parent == tmp_path / "out" and not is_blank(read_png(path))
    gallery = read_png(written["gallery"])
    grid = figures.channel_gallery_grid(DEFAULT_CHANNELS, 3)
    assert gallery.shape[:2] == (round(grid.size[1] * tiles.DPI), round(grid.size[0] * tiles.DPI))


def test_visualize_skips_gradcam_for_a_single_face(tmp_path, model, people):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), cv2.cvtColor(people[0][0], cv2.COLOR_RGB2BGR))
    written = visualize(model, [path], tmp_path / "out", channels=[1, 2])
    assert set(written) == {"gallery", "feature_maps"}


def test_faces_of_the_input_size_are_used_as_they_are_and_others_resized(tmp_path, people):
    face = people[0][0]
    exact, wide = tmp_path / "exact.png", tmp_path / "wide.png"
    cv2.imwrite(str(exact), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(wide), np.zeros((40, 80, 3), np.uint8))
    faces = load_faces([exact, wide], SIZE, crop="none")
    assert np.array_equal(faces.images[0], face)
    assert faces.images[1].shape == (SIZE, SIZE, 3)
    assert faces.names == ["exact", "wide"]
    assert np.array_equal(load_faces([exact], SIZE, crop="auto").images[0], face)


def test_detect_crop_brings_a_large_photo_to_the_input_size(tmp_path):
    big = SyntheticFaces(0).sample(HELDOUT_FIRST_IDENTITY, 0, 160).image
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(np.pad(big, ((40, 40), (80, 80), (0, 0))), cv2.COLOR_RGB2BGR))
    faces = load_faces([path], SIZE, crop="detect", detector="haar")
    assert faces.images[0].shape == (SIZE, SIZE, 3)


def test_chip_crop_cuts_dlibs_aligned_chip():
    from explainface.faces import detect
    from explainface.faces.chip import chip_face
    from explainface.readers.images import load_image_rgb
    from realdata import real_data

    if not detect.dlib_available():
        pytest.skip("dlib is not installed (pip install dlib-bin)")
    path = sorted(real_data("helen", "testset").glob("*.jpg"))[0]
    faces = load_faces([path], SIZE, crop="chip")
    np.testing.assert_array_equal(faces.images[0], chip_face(load_image_rgb(path), detect.create_detector(), SIZE)[0])


def test_bad_image_files_are_named(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.jpg"):
        load_faces([junk], SIZE)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_faces([tmp_path / "missing.jpg"], SIZE)


@pytest.mark.parametrize(
    "content,problem",
    [
        ("{not json", "not JSON"),
        ('{"pe_mean": 0.3}', "no channel list"),
        ('{"channels": [{"part": "eyes"}]}', "entry 0"),
    ],
)
def test_a_bad_dictionary_file_is_named_with_its_problem(tmp_path, content, problem):
    bad = tmp_path / "explainability.json"
    bad.write_text(content)
    with pytest.raises(ValueError, match=problem) as e:
        read_dictionary(bad)
    assert str(bad) in str(e.value)


def test_channel_lists_parse_and_bad_ones_are_argparse_errors():
    assert parse_channels("3,17,42") == [3, 17, 42]
    for bad in ("3,x", "", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_channels(bad)


def test_visualize_command_on_a_checkpoint_prints_the_files_it_wrote(tmp_path, capsys):
    from explainface.training.checkpoint import save_checkpoint
    from explainface.training.config import load_config

    cfg = load_config(None, ["model.name=vgg13", "model.width=0.125", "model.input_size=112", "model.embedding_dim=32"])
    torch.manual_seed(0)
    net = create_model("vgg13", width=0.125, input_size=112, embedding_dim=32)
    state = {"config": cfg.to_dict(), "step": 0}
    ckpt = save_checkpoint(tmp_path / "m.safetensors", {f"model.{k}": v for k, v in net.state_dict().items()}, state)
    parser = argparse.ArgumentParser()
    add_visualize_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "vis"
    args = parser.parse_args(["visualize", "--model", str(ckpt), "--images", "synthetic", "--channels", "3,17,42",
                              "--people", "2", "--out", str(out)])  # fmt: skip
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    for name in ("gallery.png", "feature_maps.png", "gradcam.png"):
        assert str(out / name) in printed and (out / name).is_file()
    gallery = read_png(out / "gallery.png")
    grid = figures.channel_gallery_grid(3, 2)
    assert gallery.shape[:2] == (round(grid.size[1] * tiles.DPI), round(grid.size[0] * tiles.DPI))


def test_a_pair_index_beyond_the_faces_is_an_error(tmp_path, model, people):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), cv2.cvtColor(people[0][0], cv2.COLOR_RGB2BGR))
    with pytest.raises(ValueError, match="pair index 3"):
        visualize(model, [path], tmp_path / "out", pair=(0, 3))


def test_a_dictionary_of_another_network_is_refused_with_the_channel_named(tmp_path, model, people):
    entries = [{"channel": 500, "part": "eyes", "frequency": 0.9, "active_images": 3}]
    with pytest.raises(ValueError, match="no channel 500"):
        figures.channel_dictionary_figure(entries, model, people[0], out_png=tmp_path / "d.png")
