"""Checkpoints: one safetensors file of tensors with the run's state as JSON metadata, written atomically.

Everything needed to resume (model, head, optimizer buffers, RNG state, step,
config, beta controller) lives in ONE file, written to a temporary name and
renamed into place, so a run killed at any moment leaves either the previous
complete checkpoint or the new one, never a mix. safetensors holds only tensors
and strings: loading a checkpoint cannot run code (no pickle). A readable
``<name>.json`` copy of the state is written beside it for people.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from explainface.errors import InputError
from explainface.files import atomic_write_text, temporary_path
from explainface.models.base import LoadedModel

FORMAT = "explainface-checkpoint-1"
_BOOL = torch.bool


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write `tensors` and the JSON-able `state` to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {"format": FORMAT, "state": json.dumps(state)}
    tmp = temporary_path(path)
    save_file(flat, str(tmp), metadata=meta)
    with open(tmp, "rb") as f:  # make the bytes durable before the rename publishes them
        os.fsync(f.fileno())
    os.replace(tmp, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(state, indent=2))
    return path


def _check_device(device: str | torch.device) -> torch.device:
    """`device` as a `torch.device` that this machine can run on; an `InputError` naming it (and why) otherwise
    (`explainface.training.config.check_device`). Checked before any file is read, so a wrong ``--device`` is never
    blamed on the checkpoint."""
    from explainface.training.config import check_device

    return torch.device(check_device(str(device), "device"))


#: The first bytes of formats that are not safetensors, for a message that says what a file is instead.
_FOREIGN_MAGIC = (
    (b"PK\x03\x04", "a zip archive (a torch.save .pt/.pth checkpoint?)"),
    (b"\x80", "a Python pickle (a torch.save checkpoint?)"),
    (b"\x89HDF", "an HDF5 file (a Keras checkpoint?)"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x93NUMPY", "a NumPy .npy array"),
)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, state) of a checkpoint; an `InputError` (or `FileNotFoundError`) names the file and what is wrong
    when it is not one of ours: missing, a folder, empty, another format (a zip or pickle renamed .safetensors is
    recognised, never unpickled), damaged, or without our metadata (`format`, and `state` holding a JSON object)."""
    path = Path(path)
    dev = _check_device(device)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.safetensors"))[:5]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise InputError(f"{path}: is a folder, not a checkpoint file; give the .safetensors file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not head:
        raise InputError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        with safe_open(str(path), framework="pt", device=str(dev)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged files
        # only now say what else it may be: a safetensors file starts with its header's length, whose first byte
        # can be anything (0x80 included), so the magic bytes of other formats mean nothing for a readable file
        for magic, kind in _FOREIGN_MAGIC:
            if head.startswith(magic):
                raise InputError(
                    f"{path}: not a safetensors checkpoint: it looks like {kind}; explainface "
                    "reads only the safetensors files it writes (it never unpickles a file)"
                ) from None
        raise InputError(f"{path}: not a readable safetensors checkpoint ({_short(e)})") from None
    fmt = meta.get("format")
    if fmt != FORMAT:
        got = "it has no explainface metadata" if fmt is None else f"its format is {_short(fmt, 80)!r}"
        raise InputError(f"{path}: not an explainface checkpoint ({got}; expected format {FORMAT!r})")
    if "state" not in meta:
        raise InputError(f"{path}: its metadata has no 'state' (the run's config and step); the file is incomplete")
    try:
        state = json.loads(meta["state"])
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError; deep nesting a RecursionError
        raise InputError(f"{path}: its 'state' metadata is not valid JSON ({_short(e)})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: its 'state' metadata is a JSON {type(state).__name__}, expected an object")
    return tensors, state


def _short(value: object, limit: int = 300) -> str:
    """`str(value)` on one line, cut to `limit` characters: an error quotes a file's content, not all of it."""
    text = " ".join(str(value).split()) or type(value).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def prefixed(prefix: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state_dict.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (for safetensors) and JSON (param groups, scalars)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in unprefixed("optim", tensors).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_model_weights(path: str | Path, device: str | torch.device = "cpu"):
    """(model, config) rebuilt from a checkpoint, in eval mode: for verify/explain/report."""
    return _model_from(*load_checkpoint(path, device), device, path)


def _model_label(m) -> str:
    return f"{m.name} w{m.width:g} @{m.input_size}"


def _check_model_config(m, path: str | Path) -> None:
    """The `model` section of a checkpoint's config has values a network can be built from (else `InputError`)."""
    from explainface.models import list_models

    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(m.name, str) or m.name not in list_models():
        raise InputError(f"{path}: its config names an unknown network {_short(m.name, 80)!r} (model.name); "
                         f"known: {', '.join(list_models())}")  # fmt: skip
    if not isinstance(m.width, (int, float)) or isinstance(m.width, bool) or not math.isfinite(m.width) \
            or m.width <= 0:  # fmt: skip
        raise InputError(f"{path}: its config has model.width {_short(m.width, 80)!r}; expected a number > 0")
    for key in ("input_size", "embedding_dim"):
        v = getattr(m, key)
        if not whole(v) or v < 1:
            raise InputError(f"{path}: its config has model.{key} {_short(v, 80)!r}; expected a whole number >= 1")
    if m.target_layer is not None and not isinstance(m.target_layer, str):
        raise InputError(f"{path}: its config has model.target_layer {_short(m.target_layer, 80)!r}; "
                         "expected a layer name or null")  # fmt: skip


def _fit(build, tensors: dict[str, torch.Tensor], what: str, path: str | Path, device, hint=None) -> torch.nn.Module:
    """The module `build()` makes, with `tensors` (its state dict) loaded, in eval mode on `device`.

    The module is first built on the meta device (no memory), so a config that asks for an absurd size costs
    nothing; its tensors' names, shapes and kinds are compared with the file's, and every mismatch is an
    `InputError` naming the file, `what` was expected and what the file has (and `hint()`, when it says what the
    weights would fit). Non-finite weights are an error."""
    try:
        with torch.device("meta"):
            skeleton = build()
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError, KeyError, IndexError, AttributeError,
            ZeroDivisionError) as e:  # everything it is built from comes from the file  # fmt: skip
        raise InputError(f"{path}: {what} cannot be built from its config ({type(e).__name__}: {_short(e)})") from None
    expected = skeleton.state_dict()
    problems = _mismatches(expected, tensors)
    if problems:
        guess = hint() if hint is not None else None
        guess = f" ({guess})" if guess else ""
        raise InputError(f"{path}: {what}, but its weights do not fit that network{guess}: {problems}")
    bad = _not_finite(tensors)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise InputError(f"{path}: {what}, but {len(bad)} of its {len(tensors)} weight tensors hold NaN or infinite "
                         f"values ({shown}): the run that wrote it diverged; use an earlier checkpoint")  # fmt: skip
    try:
        module = build()
        module.load_state_dict(tensors)
    except (ValueError, TypeError, RuntimeError) as e:  # the checks above should leave nothing to fail here
        raise InputError(f"{path}: {what}, but its weights cannot be loaded ({_short(e)})") from None
    return module.to(device).eval()


def _not_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf (one check per dtype first: most files have none)."""
    # float16/bfloat16/float8 are checked as float32 (exact: finite stays finite), which every op supports
    floats = {k: v.reshape(-1) if v.element_size() >= 4 else v.reshape(-1).float()
              for k, v in tensors.items() if v.is_floating_point() and v.numel()}  # fmt: skip
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for v in floats.values():
        by_dtype.setdefault(v.dtype, []).append(v)
    if all(bool(torch.isfinite(torch.cat(vs)).all()) for vs in by_dtype.values()):
        return []
    return [k for k, v in floats.items() if not bool(torch.isfinite(v).all())]


def _shape(t: torch.Tensor) -> str:
    return "[" + ",".join(str(d) for d in t.shape) + "]"


def _mismatches(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], shown: int = 3) -> str:
    """What keeps `given` from loading as `expected` (a state dict), in one line; '' when it fits."""
    if not given:
        return "the file holds none of its tensors"
    parts = []
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    wrong = []
    for k, want in expected.items():
        have = given.get(k)
        if have is None:
            continue
        if tuple(have.shape) != tuple(want.shape):
            wrong.append(f"{k} expects {_shape(want)}, the file has {_shape(have)}")
        elif want.is_floating_point() and not have.is_floating_point():
            wrong.append(f"{k} expects floating-point values, the file has {have.dtype}")
        elif not want.is_floating_point() and (have.is_floating_point() or have.is_complex() or have.dtype is _BOOL):
            wrong.append(f"{k} expects {want.dtype}, the file has {have.dtype}")

    def listed(items: list[str]) -> str:
        return "; ".join(items[:shown]) + (f"; and {len(items) - shown} more" if len(items) > shown else "")

    if wrong:
        parts.append(listed(wrong))
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing ({listed(missing)})")
    if extra:
        parts.append(f"{len(extra)} unexpected tensor(s) ({listed(extra)})")
    return "; ".join(parts)


def _model_from(tensors: dict[str, torch.Tensor], state: dict, device: str | torch.device,
                path: str | Path = "checkpoint"):  # fmt: skip
    """(network, config) of a loaded checkpoint (`path` names it in errors), weights checked against the config."""
    from explainface.training.config import config_from_dict

    values = state.get("config")
    if values is None:
        raise InputError(f"{path}: its state has no 'config' (the training config that says which network it is)")
    if not isinstance(values, dict):
        raise InputError(f"{path}: its 'config' is a JSON {type(values).__name__}, expected an object")
    try:
        cfg = config_from_dict(values, where=f"{path}: config")
    except ValueError as e:
        text = _short(e, 1000)
        raise InputError(text if str(path) in text else f"{path}: {text}") from None
    except (TypeError, KeyError, AttributeError, IndexError) as e:  # a value of the wrong JSON type
        raise InputError(f"{path}: its config cannot be read ({type(e).__name__}: {_short(e)})") from None
    m = cfg.model
    _check_model_config(m, path)
    weights = unprefixed("model", tensors)
    if not weights:
        names = ", ".join(sorted(tensors)[:5]) or "none"
        raise InputError(f"{path}: holds no network weights (no 'model.*' tensors; it has {len(tensors)}: {names})")

    def build() -> torch.nn.Module:  # the trainer's network, less the weights file: the checkpoint holds them
        from explainface.training.pretrained import build_network

        return build_network(m, weights=False)

    model = _fit(build, weights, f"its config says {_model_label(m)}", path, device, lambda: _would_fit(weights, m))
    return model, cfg


@functools.lru_cache(maxsize=None)
def _tensor_names(name: str) -> frozenset[str]:
    """The state-dict names of registered network `name` (they do not depend on its width or sizes)."""
    from explainface.models import create_model

    try:
        with torch.device("meta"):
            return frozenset(create_model(name, width=0.125, input_size=112, embedding_dim=8).state_dict())
    except (ValueError, TypeError, RuntimeError):
        return frozenset()


def _would_fit(weights: dict[str, torch.Tensor], m) -> str | None:
    """Which registered network the weights do fit (same input size and embedding size, the width read off the
    first convolution), as "they fit NAME wW": a config saved with another run's weights; None if none fits."""
    from explainface.models import create_model, list_models

    first = next((v for v in weights.values() if v.dim() == 4), None)
    if first is None:
        return None
    for name in list_models():
        if _tensor_names(name) != set(weights):  # another architecture (BatchNorm or not, depth): no need to try
            continue
        for width in sorted({first.shape[0] / 64, m.width}):
            try:
                with torch.device("meta"):
                    net = create_model(name, width=width, input_size=m.input_size, embedding_dim=m.embedding_dim)
            except (ValueError, TypeError, RuntimeError):
                continue
            if not _mismatches(net.state_dict(), weights):
                return f"they fit {name} w{width:g} @{m.input_size}: the config of another run?"
    return None


def model_name(model) -> str:
    """How results name a model: its checkpoint path (also a `LoadedModel`'s, read from one), or the class of a
    model given as a module."""
    if isinstance(model, (str, Path)):
        return str(model)
    if getattr(model, "source", None):
        return str(model.source)
    net = getattr(model, "model", model)  # a LoadedModel holds the module
    return f"{type(net).__name__} (in memory)"


def _pretrained(model, device: str) -> LoadedModel | None:
    """A registered pretrained network named `model` (one whose builder loads its own weights and says so with a
    `fixed` shape: ``dlib_resnet``), when no file of that name exists; else None."""
    from explainface.models.registry import create_model, pretrained_models

    if not isinstance(model, str) or Path(model).exists() or model not in pretrained_models():
        return None
    net = create_model(model).to(_check_device(device)).eval()
    return LoadedModel(net, int(net.input_size), net.target_layer, f"{model} (pretrained)")


def load_model(model: str | Path | torch.nn.Module, device: str = "cpu") -> LoadedModel:
    """A checkpoint path, an `nn.Module` (with `input_size` and `target_layer`) or the name of a registered
    pretrained network (``dlib_resnet``) in eval mode, with a label.

    A checkpoint that cannot be used is an `InputError` naming the file and the problem (`load_checkpoint`, and:
    its config does not build a network, its weights do not fit that network, or hold NaN/inf); an unusable
    `device` is an `InputError` naming the device, checked before the file is read."""
    if isinstance(model, torch.nn.Module):
        dev = _check_device(device)
        size = getattr(model, "input_size", None)
        if size is None:
            raise ValueError("the model has no `input_size`: load it from a checkpoint or set model.input_size")
        layer = getattr(model, "target_layer", None)
        if layer is None:
            raise ValueError(f"{type(model).__name__} has no target_layer")
        return LoadedModel(model.to(dev).eval(), int(size), layer, type(model).__name__)
    pretrained = _pretrained(model, device)
    if pretrained is not None:
        return pretrained
    tensors, state = load_checkpoint(model, device)  # read once: the network and its pair heads
    net, cfg = _model_from(tensors, state, device, model)
    m = cfg.model
    layer = m.target_layer or net.target_layer
    if layer not in dict(net.named_modules()):
        raise InputError(f"{model}: its config's target layer {_short(layer, 80)!r} (model.target_layer) is not a "
                         f"layer of {m.name}; its default is {net.target_layer!r}")  # fmt: skip
    heads = pair_heads_from(tensors, state, model, device)
    return LoadedModel(net, m.input_size, layer, _model_label(m), heads, str(model))


def pair_heads_from(tensors: dict[str, torch.Tensor], state: dict, path: str | Path,
                    device: str | torch.device = "cpu") -> dict[str, torch.nn.Module]:  # fmt: skip
    """The pair heads (xCos) of a loaded checkpoint (`path` names it in errors), rebuilt by name, in eval mode;
    {} if none. A head whose spec or weights do not fit is an `InputError` naming the file and the head."""
    from explainface.models.pair_heads import create_pair_head

    specs = state.get("pair_heads") or {}
    if not isinstance(specs, dict):
        raise InputError(f"{path}: its 'pair_heads' is a JSON {type(specs).__name__}, expected an object")
    heads = {}
    for name, spec in specs.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("options"), dict) \
                or not isinstance(spec.get("prefix"), str):  # fmt: skip
            raise InputError(
                f"{path}: its pair head {_short(name, 80)!r} has no valid spec (expected an "
                f"object with 'options' (an object) and 'prefix' (a string), got {_short(spec, 120)})"
            )
        options, prefix = spec["options"], spec["prefix"]

        def build(name=name, options=options) -> torch.nn.Module:
            return create_pair_head(name, **options)

        heads[name] = _fit(build, unprefixed(prefix, tensors), f"its pair head {name!r} ({_short(options, 120)})",
                           path, device)  # fmt: skip
    return heads
