"""Pretrained networks: the network of a config's ``model`` section, with its pretrained weights loaded.

`build_network(cfg.model)` is how the trainer (and the experiment) builds a network: the registered builder
(`create_model`), then ``model.identity_layers`` replaced by the identity, then ``model.weights`` loaded. A checkpoint
is rebuilt the same way without the weights file (`training.checkpoint` loads its own tensors).

``model.weights`` may be

* a ``.pth`` / ``.pt`` (any suffix but ``.safetensors``) PyTorch state dict, read with
  ``torch.load(weights_only=True)``: tensors only, no code runs (a ``{"state_dict": ...}`` wrapper and a
  DataParallel ``module.`` prefix are taken off), e.g. insightface's ``backbone.pth``;
* a ``.safetensors`` state dict;
* an explainface checkpoint (its ``model.*`` tensors).

The weights must fit the network exactly (``strict``): anything else is an `InputError` naming the file and what
does not fit (missing and unexpected tensors, wrong shapes, a few of each), or the NaN/inf tensors.

A network whose builder loads weights of its own (a ``weights=`` argument, e.g. dlib's) needs no ``model.weights``.
`infer_model` reads the architecture (registered name, width, embedding size) off a state dict's tensor names
and shapes, for ``explainface retrofit --model backbone.pth``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explainface.errors import InputError
from explainface.training.checkpoint import FORMAT, _mismatches, _not_finite, _short, unprefixed
from explainface.training.config import ModelConfig

#: Input size assumed for a state dict whose network does not say (insightface's aligned faces; every registered
#: network has the same tensor shapes at 112 and 224 px).
DEFAULT_INPUT_SIZE = 112


def build_network(m: ModelConfig, weights: bool = True) -> nn.Module:
    """The network of config section `m`: built, its ``identity_layers`` replaced, its ``weights`` loaded (unless
    `weights` is False: a checkpoint brings its own, and a builder that loads weights of its own is told not to,
    ``weights=None``)."""
    from explainface.models import create_model
    from explainface.models.layers import replace_with_identity

    # a checkpoint brings every tensor: a builder that loads weights of its own (dlib's) need not read its file
    own = {"weights": None} if not weights and loads_own_weights(m.name) else {}
    net = create_model(m.name, width=m.width, input_size=m.input_size, embedding_dim=m.embedding_dim,
                       dropout=m.dropout, **own)  # fmt: skip
    if m.identity_layers:
        try:
            replace_with_identity(net, m.identity_layers)
        except ValueError as e:
            raise InputError(f"model.identity_layers: {e}") from None
    if weights and m.weights:
        load_pretrained(net, m.weights, f"{m.name} w{m.width:g} @{m.input_size}, {m.embedding_dim}-d")
    return net


def load_pretrained(net: nn.Module, path: str | Path, label: str = "") -> nn.Module:
    """Load the weights file `path` (module docstring) into `net`, strictly; returns `net`."""
    tensors = read_state_dict(path)
    what = label or type(net).__name__
    problems = _mismatches(net.state_dict(), tensors)
    if problems:
        raise InputError(f"{path} (model.weights): its weights do not fit the network ({what}): {problems}")
    bad = _not_finite(tensors)
    if bad:
        raise InputError(f"{path} (model.weights): {len(bad)} tensor(s) hold NaN or infinite values "
                         f"({', '.join(bad[:3])})")  # fmt: skip
    try:
        net.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError, TypeError) as e:  # the checks above should leave nothing to fail here
        raise InputError(f"{path} (model.weights): cannot be loaded into {what} ({_short(e)})") from None
    return net


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path} (model.weights): is a folder; give the weights file (.pth, .safetensors)")
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path} (model.weights)")


def is_explainface_checkpoint(path: str | Path) -> bool:
    """Whether `path` is a safetensors file with explainface's checkpoint metadata."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT
    except Exception:  # not readable as safetensors: not one of ours
        return False


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The network tensors of a weights file (module docstring), on the CPU; `InputError` naming the file."""
    path = Path(path)
    _check_file(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError ...: all say "not a state dict"
        raise InputError(f"{path} (model.weights): not a PyTorch state dict readable with weights_only=True "
                         f"({_short(e, 200)}); explainface never unpickles code") from None  # fmt: skip
    return _state_dict_of(obj, path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            ours = (f.metadata() or {}).get("format") == FORMAT
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise InputError(f"{path} (model.weights): not a readable safetensors file ({_short(e, 200)})") from None
    if ours:
        tensors = unprefixed("model", tensors)
        if not tensors:
            raise InputError(f"{path} (model.weights): an explainface checkpoint without network weights")
    return tensors


def _state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside what ``torch.load`` returned: a dict of tensors, maybe under "state_dict"."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"{path} (model.weights): expected a state dict (a mapping of tensor names to tensors), "
                         f"got {type(obj).__name__}{' (empty)' if isinstance(obj, dict) else ''}")  # fmt: skip
    other = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if other:
        raise InputError(f"{path} (model.weights): a state dict holds tensors only; {len(other)} entr(ies) are not "
                         f"({', '.join(other[:3])})")  # fmt: skip
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel / DDP
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def loads_own_weights(name: str) -> bool:
    """Whether registered network `name`'s builder has a ``weights`` argument (it loads pretrained weights itself,
    e.g. dlib's ResNet)."""
    from explainface.models.registry import _MODELS

    try:
        return "weights" in inspect.signature(_MODELS[name]).parameters
    except (KeyError, TypeError, ValueError):
        return False


def infer_model(tensors: dict[str, torch.Tensor], name: str | None = None,
                input_size: int = DEFAULT_INPUT_SIZE) -> dict[str, Any]:  # fmt: skip
    """``{"name", "width", "embedding_dim", "input_size"}`` of the registered network that `tensors` fit exactly (of
    `name` only, when given): the name from the tensor names, the width from the first convolution (3 input
    channels), the embedding size among the 1-D tensors' sizes (the file's order is not relied on: safetensors sorts
    its keys). ValueError when none fits."""
    from explainface.models import list_models
    from explainface.training.checkpoint import _tensor_names

    widths = sorted({v.shape[0] / 64 for v in tensors.values() if v.dim() == 4 and v.shape[1] == 3})
    sizes = sorted({int(v.shape[0]) for v in tensors.values() if v.dim() == 1}, reverse=True)
    if not widths or not sizes:
        raise ValueError("the tensors hold no RGB convolution or no 1-D tensor: not a face network")
    names = [name] if name else [n for n in list_models() if _tensor_names(n) == set(tensors)]
    for candidate in names:
        for width in widths:
            for emb in sizes:
                if _fits(candidate, tensors, width=width, input_size=input_size, embedding_dim=emb):
                    return {"name": candidate, "width": width, "embedding_dim": emb, "input_size": input_size}
    which = f"{name} (at any width)" if name else "any registered network"
    raise ValueError(f"they fit {which} at width {', '.join(f'{w:g}' for w in widths)} and {input_size} px; name "
                     "the network: model.name=NAME (and model.width, model.embedding_dim, model.input_size)")


def _fits(name: str, tensors: dict[str, torch.Tensor], **kw: Any) -> bool:
    """Whether registered network `name` built with `kw` (on the meta device: no memory) has exactly `tensors`."""
    from explainface.models import create_model

    if loads_own_weights(name):
        kw["weights"] = None
    try:
        with torch.device("meta"):
            net = create_model(name, **kw)
    except Exception:  # a builder that refuses these sizes (a fixed-shape network): not this one
        return False
    return not _mismatches(net.state_dict(), tensors)


def original_identity_layers(m: ModelConfig) -> list[str]:
    """The layers that are identities in the network as the weights' authors ran it: for weights from outside
    explainface (a state-dict file, or a builder's own), the layers this port adds (`added_layers`, e.g. an iresnet's
    ``act3``) as well as ``model.identity_layers``; for an explainface checkpoint, ``model.identity_layers``."""
    if m.weights is not None and is_explainface_checkpoint(m.weights):
        return list(m.identity_layers)
    from explainface.models import create_model

    kw: dict[str, Any] = dict(width=m.width, input_size=m.input_size, embedding_dim=m.embedding_dim)
    if loads_own_weights(m.name):
        kw["weights"] = None  # the layers are all it needs
    with torch.device("meta"):  # no memory
        net = create_model(m.name, **kw)
    return list(dict.fromkeys([*m.identity_layers, *getattr(net, "added_layers", ())]))
