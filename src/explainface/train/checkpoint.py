"""Checkpoints: one safetensors file of tensors with the run's state as JSON metadata, written atomically.

Everything needed to resume (model, head, optimizer buffers, RNG state, step,
config, beta controller) lives in ONE file, written to a temporary name and
renamed into place, so a run killed at any moment leaves either the previous
complete checkpoint or the new one, never a mix. safetensors holds only tensors
and strings: loading a checkpoint cannot run code (no pickle). A readable
``<name>.json`` copy of the state is written beside it for people.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "explainface-checkpoint-1"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write `tensors` and the JSON-able `state` to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {"format": FORMAT, "state": json.dumps(state)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(flat, str(tmp), metadata=meta)
    with open(tmp, "rb") as f:  # make the bytes durable before the rename publishes them
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _atomic_write_text(path.with_suffix(".json"), json.dumps(state, indent=2))
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, state) of a checkpoint; a clear error names the file when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an explainface checkpoint (format {meta.get('format')!r})")
    return tensors, json.loads(meta["state"])


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
    return _model_from(*load_checkpoint(path, device), device)


def _model_from(tensors: dict[str, torch.Tensor], state: dict, device: str | torch.device):
    from explainface.models import create_model
    from explainface.train.config import config_from_dict

    cfg = config_from_dict(state["config"])
    m = cfg.model
    model = create_model(m.name, width=m.width, input_size=m.input_size, embedding_dim=m.embedding_dim)
    model.load_state_dict(unprefixed("model", tensors))
    return model.to(device).eval(), cfg


@dataclass
class LoadedModel:
    """A model ready for inference: eval mode, its input size, target layer and a label for tables."""

    model: torch.nn.Module
    input_size: int
    layer: str
    label: str
    pair_heads: dict[str, torch.nn.Module] = field(default_factory=dict)  # trained pair scorers (xCos), by name
    source: str | None = None  # the checkpoint file, when loaded from one


def load_model(model: str | Path | torch.nn.Module, device: str = "cpu") -> LoadedModel:
    """A checkpoint path or an `nn.Module` (with `input_size` and `target_layer`) in eval mode, with a label."""
    if isinstance(model, torch.nn.Module):
        size = getattr(model, "input_size", None)
        if size is None:
            raise ValueError("the model has no `input_size`: load it from a checkpoint or set model.input_size")
        layer = getattr(model, "target_layer", None)
        if layer is None:
            raise ValueError(f"{type(model).__name__} has no target_layer")
        return LoadedModel(model.to(device).eval(), int(size), layer, type(model).__name__)
    tensors, state = load_checkpoint(model, device)  # read once: the network and its pair heads
    net, cfg = _model_from(tensors, state, device)
    m = cfg.model
    layer = m.target_layer or net.target_layer
    heads = pair_heads_from(tensors, state, model, device)
    return LoadedModel(net, m.input_size, layer, f"{m.name} w{m.width:g} @{m.input_size}", heads, str(model))


def pair_heads_from(tensors: dict[str, torch.Tensor], state: dict, path: str | Path,
                    device: str | torch.device = "cpu") -> dict[str, torch.nn.Module]:  # fmt: skip
    """The pair heads (xCos) of a loaded checkpoint (`path` names it in errors), rebuilt by name, in eval mode;
    {} if none."""
    from explainface.models.pair_heads import create_pair_head

    heads = {}
    for name, spec in (state.get("pair_heads") or {}).items():
        try:
            head = create_pair_head(name, **spec["options"])
            head.load_state_dict(unprefixed(spec["prefix"], tensors))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: its pair head {name!r} cannot be rebuilt ({e})") from None
        heads[name] = head.to(device).eval()
    return heads
