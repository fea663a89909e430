"""The `visualize` pipeline (docs/method.md §8): a model (and optionally a baseline) and some faces in, the figures out.

faces (image files, or held-out synthetic faces) -> model-input crops (the no-alignment crop of `verify`, or
  dlib's aligned chips with `crop="chip"`)
  -> gallery.png          top-10% overlays of chosen channels across people (Figure 6)
  -> feature_maps.png     the first face's feature maps, model vs baseline (Figure 5)
  -> gradcam.png          Grad-CAM of the similarity of two faces (Figure 1)
  -> xcos.png             for an xCos checkpoint: face A with the grid, face B, patch cosines, attention
  -> channel_dictionary.png   given the explainability.json of `explain`
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explainface.explanations import figures
from explainface.explanations.dictionary import read_dictionary as dictionary_file
from explainface.training.checkpoint import load_model

SYNTHETIC = "synthetic"
#: Channels in the gallery when none are chosen: the most active ones.
DEFAULT_CHANNELS = 8
#: Synthetic faces drawn to find the channel dictionary's examples (the gallery uses the first `n_people`).
DICTIONARY_POOL = 24


@dataclass
class Faces:
    """Model-input faces (uint8 [S, S, 3]) with names, and part label maps where known (synthetic faces)."""

    images: list[np.ndarray]
    names: list[str]
    labels: list[np.ndarray] | None = None


def synthetic_faces(count: int, size: int, seed: int = 0) -> Faces:
    """`count` held-out synthetic people (never trained on), one face each, with their part label maps."""
    from explainface.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces

    gen = SyntheticFaces(seed)
    samples = [gen.sample(HELDOUT_FIRST_IDENTITY + i, 0, size) for i in range(count)]
    names = [f"synthetic {HELDOUT_FIRST_IDENTITY + i}" for i in range(count)]
    return Faces([s.image for s in samples], names, [s.parts for s in samples])


def load_faces(paths: Sequence[str | Path], size: int, crop: str = "auto", detector: str = "hog",
               cut: str = "detect") -> Faces:  # fmt: skip
    """Image files (or folders of them) as model inputs: `crop="detect"` cuts the main face as `verify` does (square
    with margin, no alignment; the centred square where no face is found), `"chip"` cuts dlib's aligned face chip
    (`faces.chip`), `"none"` only resizes, `"auto"` leaves images that are already square crops of the input size
    as they are and cuts the others as `cut` ("detect" or "chip": the model's, `faces.crop.model_cut`)."""
    from explainface.faces.crop import crop_face_file
    from explainface.readers.images import decode_image_rgb, find_images, image_size, read_image_bytes, resize_image

    if crop not in ("auto", "detect", "none", "chip"):
        raise ValueError(f'crop must be "auto", "detect", "none" or "chip", got {crop!r}')
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = find_images(p)
            if not found:
                raise ValueError(f"{p}: no face images in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"image not found: {p}")
    det = None
    images = []
    for f in files:
        data = read_image_bytes(f)
        dims = image_size(data) if crop == "auto" else None  # (width, height) from a JPEG / PNG header
        if crop == "auto" and dims is None:
            dims = decode_image_rgb(data, str(f)).shape[1::-1]
        if crop == "none" or dims == (size, size):
            images.append(resize_image(decode_image_rgb(data, str(f), max_side=2 * size), size))  # errors name f
            continue
        if det is None:
            from explainface.faces.detect import create_detector

            det = create_detector(detector)
        how = cut if crop == "auto" else crop
        face, _ = crop_face_file(data, str(f), det, size=size, crop=how)  # a large photo is decoded reduced
        images.append(face)
    return Faces(images, [f.stem for f in files])


def read_dictionary(path: str | Path) -> tuple[list[dict], str | None]:
    """The channel dictionary of an `explainability.json` (or a `channel_dictionary.json` list): (entries, layer);
    `explanations.dictionary` reads and checks it."""
    d = dictionary_file(path, frequency=True)
    return d.entries, d.layer


def visualize(
    model: str | Path | nn.Module,
    faces: str | Sequence[str | Path],
    out_dir: str | Path,
    channels: Sequence[int] | None = None,
    baseline: str | Path | nn.Module | None = None,
    pair: tuple[int, int] | None = None,
    layer: str | None = None,
    n_people: int = 6,
    dictionary: str | Path | None = None,
    crop: str = "auto",
    detector: str = "hog",
    seed: int = 0,
    device: str = "cpu",
    labels: tuple[str, str] | None = None,
    xcos_threshold: float | None = None,
) -> dict[str, Path]:
    """Write the figures of docs/method.md §8 for `model` to `out_dir`; returns {figure: path} of the files written.

    `faces`: image paths (or folders), or "synthetic" for held-out synthetic people. The gallery shows the first
    `n_people` faces and `channels` (default: the 8 most active on them); the feature maps and Grad-CAM also show
    `baseline` where given; Grad-CAM explains faces `pair` (indices, default the first two); the channel
    dictionary figure needs `dictionary` (an explainability.json; drawn at the layer it was measured at).
    `layer` (default the target layer) applies to the baseline too when it has a layer of that name.
    `labels` names the model and the baseline in the figures (default: "model: <architecture>", "baseline: ...").
    A checkpoint with an xCos head also gets xcos.png for the pair, its patch cosines coloured around
    `xcos_threshold` (e.g. the verification threshold; default 0).
    """
    from explainface.faces.crop import model_cut
    from explainface.models.capture import find_module

    if n_people < 1:
        raise ValueError(f"n_people must be at least 1, got {n_people}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = load_model(model, device)
    base = load_model(baseline, device) if baseline is not None else None
    if base is not None and base.input_size != net.input_size:
        raise ValueError(f"the baseline takes {base.input_size}px faces, the model {net.input_size}px")
    size = net.input_size
    use_layer = layer or net.layer
    find_module(net.model, use_layer)  # a typo fails before any work
    entries, dict_layer = read_dictionary(dictionary) if dictionary is not None else (None, None)

    pool = _face_pool(faces, size, n_people, pair, dictionary is not None, crop, detector, seed,
                      model_cut(net.model))
    people, names = pool.images[:n_people], pool.names[:n_people]

    written: dict[str, Path] = {}
    if not channels:
        channels = figures.top_channels(figures.layer_maps(net.model, people, use_layer), DEFAULT_CHANNELS)
    written["gallery"] = figures.channel_gallery(net.model, people, channels, use_layer, out / "gallery.png", names)

    names_ = labels or (f"model: {net.label}", f"baseline: {base.label if base is not None else ''}")
    nets = {names_[0]: (net.model, use_layer)}
    if base is not None:
        base_layer = layer if layer and _has_module(base.model, layer) else base.layer
        nets[names_[1]] = (base.model, base_layer)
    written["feature_maps"] = figures.feature_map_comparison(
        {k: m for k, (m, _) in nets.items()},
        pool.images[0],
        {k: lay for k, (_, lay) in nets.items()},
        out / "feature_maps.png",
    )

    if len(pool.images) >= 2 or pair is not None:
        written.update(_pair_figures(net, nets, pool, pair, base is not None, out, xcos_threshold))

    if entries is not None:
        # the dictionary's channels index the layer it was measured at
        d_layer = dict_layer or use_layer
        written["channel_dictionary"] = figures.channel_dictionary_figure(
            entries, net.model, pool.images, d_layer, out / "channel_dictionary.png", labels=pool.labels
        )
    return written


def _face_pool(faces, size: int, n_people: int, pair, with_dictionary: bool, crop: str, detector: str, seed: int,
               cut: str = "detect"):  # fmt: skip
    """The faces to draw: held-out synthetic people (as many as the figures need) or the given images."""
    if isinstance(faces, str | Path):
        faces = [faces]
    if [str(p) for p in faces] == [SYNTHETIC]:
        wanted = max(n_people, 2, *(k + 1 for k in pair or ()), DICTIONARY_POOL if with_dictionary else 0)
        pool = synthetic_faces(wanted, size, seed)
    else:
        pool = load_faces(faces, size, crop, detector, cut)
    for k in pair or ():
        if not 0 <= k < len(pool.images):
            raise ValueError(f"pair index {k} is out of range: {len(pool.images)} faces")
    return pool


def _pair_figures(net, nets: dict, pool, pair, with_baseline: bool, out: Path, xcos_threshold) -> dict[str, Path]:
    """Grad-CAM of one pair's similarity for each network, and an xCos checkpoint's own panel of it."""
    from explainface.explanations.gradcam import similarity_gradcam

    i, j = pair if pair is not None else (0, 1)
    a, b = pool.images[i], pool.images[j]
    results = {k: similarity_gradcam(m, a, b, lay) for k, (m, lay) in nets.items()}
    written = {"gradcam": figures.similarity_panel(
        a, b, results if with_baseline else results[next(iter(results))], out / "gradcam.png",
        names=(pool.names[i], pool.names[j]),
    )}  # fmt: skip
    if "xcos" in net.pair_heads:  # an xCos checkpoint: its own explanation of the pair (the 1x4 panel)
        written["xcos"] = xcos_figure(net, a, b, out / "xcos.png", names=(pool.names[i], pool.names[j]),
                                      threshold=xcos_threshold)  # fmt: skip
    return written


def xcos_figure(loaded, image_a: np.ndarray, image_b: np.ndarray, out_png: Path, names: tuple[str, str] | None = None,
                threshold: float | None = None) -> Path:  # fmt: skip
    """xCos's 1x4 panel of two crops for a loaded checkpoint with an xCos head."""
    from explainface.evaluate.scoring import create_scorer
    from explainface.inputs import to_tensor

    scorer = create_scorer("xcos", loaded)
    dev = next(loaded.model.parameters()).device
    f = scorer.features([torch.stack([to_tensor(image_a), to_tensor(image_b)]).to(dev)])
    parts = scorer.explain(f[[0]], f[[1]])
    score = float(scorer.score(f[[0]], f[[1]])[0])
    return figures.xcos_panel(image_a, image_b, parts["cosine"][0], parts["attention"][0], score, threshold, out_png,
                              names=names)  # fmt: skip


def _has_module(model: nn.Module, name: str) -> bool:
    return name in dict(model.named_modules())
