"""The `visualize` pipeline (docs/method.md §8): a model (and optionally a baseline) and some faces in, the figures out.

faces (image files, or held-out synthetic faces) -> model-input crops (the no-alignment crop of `verify`)
  -> gallery.png          top-10% overlays of chosen channels across people (Figure 6)
  -> feature_maps.png     the first face's feature maps, model vs baseline (Figure 5)
  -> gradcam.png          Grad-CAM of the similarity of two faces (Figure 1)
  -> xcos.png             for an xCos checkpoint: face A with the grid, face B, patch cosines, attention
  -> channel_dictionary.png   given the explainability.json of `explain`
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explainface.argtypes import int_at_least
from explainface.explain import figures
from explainface.train.checkpoint import load_model

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
    from explainface.data.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces

    gen = SyntheticFaces(seed)
    samples = [gen.sample(HELDOUT_FIRST_IDENTITY + i, 0, size) for i in range(count)]
    names = [f"synthetic {HELDOUT_FIRST_IDENTITY + i}" for i in range(count)]
    return Faces([s.image for s in samples], names, [s.parts for s in samples])


def load_faces(paths: Sequence[str | Path], size: int, crop: str = "auto", detector: str = "hog") -> Faces:
    """Image files (or folders of them) as model inputs: `crop="detect"` cuts the main face as `verify` does (square
    with margin, no alignment; the centred square where no face is found), `"none"` only resizes, `"auto"` leaves
    images that are already square crops of the input size as they are and detects in the others."""
    from explainface.data.crop import crop_face_file
    from explainface.data.images import decode_image_rgb, image_size, resize_image
    from explainface.evaluate.explain import face_files

    if crop not in ("auto", "detect", "none"):
        raise ValueError(f'crop must be "auto", "detect" or "none", got {crop!r}')
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = face_files(p)
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
        data = np.fromfile(f, np.uint8)
        dims = image_size(data) if crop == "auto" else None  # (width, height) from a JPEG / PNG header
        if crop == "auto" and dims is None:
            dims = decode_image_rgb(data, str(f)).shape[1::-1]
        if crop == "none" or dims == (size, size):
            images.append(resize_image(decode_image_rgb(data, str(f), max_side=2 * size), size))  # errors name f
            continue
        if det is None:
            from explainface.data.detect import create_detector

            det = create_detector(detector)
        face, _ = crop_face_file(data, str(f), det, size=size)  # a large photo is decoded reduced
        images.append(face)
    return Faces(images, [f.stem for f in files])


def read_dictionary(path: str | Path) -> tuple[list[dict], str | None]:
    """The channel dictionary of an `explainability.json` (or a `channel_dictionary.json` list): (entries, layer)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read the channel dictionary ({e.strerror or e})") from e
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from e
    layer = data.get("layer") if isinstance(data, dict) else None
    entries = data.get("channels") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{path}: no channel list (expected explainability.json with a 'channels' list)")
    for i, e in enumerate(entries):
        ok = isinstance(e, dict) and isinstance(e.get("channel"), int) and "part" in e and "frequency" in e
        if not ok:
            raise ValueError(f"{path}: channel entry {i} is not {{channel: int, part, frequency}}: {e!r:.80}")
    return entries, layer if isinstance(layer, str) else None


def visualize(
    model: str | Path | nn.Module,
    images: str | Sequence[str | Path],
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

    `images`: image paths (or folders), or "synthetic" for held-out synthetic people. The gallery shows the first
    `n_people` faces and `channels` (default: the 8 most active on them); the feature maps and Grad-CAM also show
    `baseline` where given; Grad-CAM explains faces `pair` (indices, default the first two); the channel
    dictionary figure needs `dictionary` (an explainability.json; drawn at the layer it was measured at).
    `layer` (default the target layer) applies to the baseline too when it has a layer of that name.
    `labels` names the model and the baseline in the figures (default: "model: <architecture>", "baseline: ...").
    A checkpoint with an xCos head also gets xcos.png for the pair, its patch cosines coloured around
    `xcos_threshold` (e.g. the verification threshold; default 0).
    """
    from explainface.explain.gradcam import similarity_gradcam
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

    if isinstance(images, str | Path):
        images = [images]
    if [str(p) for p in images] == [SYNTHETIC]:
        wanted = max(n_people, 2, *(k + 1 for k in pair or ()), DICTIONARY_POOL if dictionary else 0)
        pool = synthetic_faces(wanted, size, seed)
    else:
        pool = load_faces(images, size, crop, detector)
    for k in pair or ():
        if not 0 <= k < len(pool.images):
            raise ValueError(f"pair index {k} is out of range: {len(pool.images)} faces")
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
        i, j = pair if pair is not None else (0, 1)
        a, b = pool.images[i], pool.images[j]
        results = {k: similarity_gradcam(m, a, b, lay) for k, (m, lay) in nets.items()}
        written["gradcam"] = figures.similarity_panel(
            a,
            b,
            results if base is not None else results[next(iter(results))],
            out / "gradcam.png",
            names=(pool.names[i], pool.names[j]),
        )
        if "xcos" in net.pair_heads:  # an xCos checkpoint: its own explanation of the pair (the 1x4 panel)
            written["xcos"] = xcos_figure(net, a, b, out / "xcos.png", names=(pool.names[i], pool.names[j]),
                                          threshold=xcos_threshold)  # fmt: skip

    if entries is not None:
        # the dictionary's channels index the layer it was measured at
        d_layer = dict_layer or use_layer
        written["channel_dictionary"] = figures.channel_dictionary_figure(
            entries, net.model, pool.images, d_layer, out / "channel_dictionary.png", labels=pool.labels
        )
    return written


def xcos_figure(loaded, image_a: np.ndarray, image_b: np.ndarray, out_png: Path, names: tuple[str, str] | None = None,
                threshold: float | None = None) -> Path:  # fmt: skip
    """xCos's 1x4 panel of two crops for a loaded checkpoint with an xCos head."""
    from explainface.data.synthetic.dataset import to_tensor
    from explainface.evaluate.scoring import create_scorer

    scorer = create_scorer("xcos", loaded)
    dev = next(loaded.model.parameters()).device
    f = scorer.features([torch.stack([to_tensor(image_a), to_tensor(image_b)]).to(dev)])
    parts = scorer.explain(f[[0]], f[[1]])
    score = float(scorer.score(f[[0]], f[[1]])[0])
    return figures.xcos_panel(image_a, image_b, parts["cosine"][0], parts["attention"][0], score, threshold, out_png,
                              names=names)  # fmt: skip


def _has_module(model: nn.Module, name: str) -> bool:
    return name in dict(model.named_modules())


def parse_channels(text: str) -> list[int]:
    """'3,17,42' -> [3, 17, 42]; anything else is an argparse error."""
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"channels must be comma-separated integers, got {text!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"channels must be non-negative integers, got {text!r}")
    return out


def parse_pair(text: str) -> tuple[int, int]:
    """'0,3' -> (0, 3): indices into the faces."""
    chans = parse_channels(text)
    if len(chans) != 2:
        raise argparse.ArgumentTypeError(f"a pair is two face indices like 0,3, got {text!r}")
    return chans[0], chans[1]


def add_visualize_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `visualize` subcommand: `explainface visualize --model CKPT --images ...|synthetic --out DIR [...]`."""
    v = subparsers.add_parser(
        "visualize",
        help="pictures of what the channels look at: overlays, feature maps, Grad-CAM, channel dictionary",
        description="Write gallery.png (top-10% regions of chosen channels across people, paper Figure 6), "
        "feature_maps.png (the first face's feature maps, model vs --baseline, Figure 5), gradcam.png (Grad-CAM "
        "of the similarity of two faces, Figure 1) and, with --dictionary, channel_dictionary.png.",
    )
    v.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    v.add_argument("--images", nargs="+", required=True, help='face images or folders, or "synthetic"')
    v.add_argument("--out", required=True, help="output folder")
    v.add_argument("--channels", type=parse_channels, default=None,
                   help=f"gallery channels, e.g. 3,17,42 (default: the {DEFAULT_CHANNELS} most active)")  # fmt: skip
    v.add_argument("--baseline", default=None, help="a second checkpoint to compare (e.g. without ECLoss)")
    v.add_argument("--layer", default=None, help="layer to show (default: the checkpoint's target layer)")
    v.add_argument("--dictionary", default=None, help="explainability.json of `explainface explain`")
    v.add_argument("--pair", type=parse_pair, default=None, help="two face indices for Grad-CAM (default 0,1)")
    v.add_argument("--people", type=int_at_least(1), default=6, help="faces in the gallery (default 6)")
    v.add_argument(
        "--crop",
        default="auto",
        choices=("auto", "detect", "none"),
        help="auto: faces already square at the input size are used as they are, others detected",
    )
    v.add_argument("--detector", default="hog", choices=("hog", "cnn", "haar", "auto"))
    v.add_argument("--seed", type=int, default=0, help="synthetic faces' seed")
    v.add_argument("--xcos-threshold", type=float, default=None,
                   help="xCos checkpoints: centre the patch-cosine colours here (e.g. verify's threshold; default 0)")
    v.add_argument("--device", default="cpu")
    v.set_defaults(func=_cmd_visualize)
    return v


def _cmd_visualize(args: argparse.Namespace) -> int:
    images = SYNTHETIC if args.images == [SYNTHETIC] else args.images
    written = visualize(
        args.model, images, args.out, channels=args.channels, baseline=args.baseline, pair=args.pair,
        layer=args.layer, n_people=args.people, dictionary=args.dictionary, crop=args.crop, detector=args.detector,
        seed=args.seed, device=args.device, xcos_threshold=args.xcos_threshold,
    )  # fmt: skip
    for name, path in written.items():
        print(f"{name + ':':<20} {path}")
    return 0
