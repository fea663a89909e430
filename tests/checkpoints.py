"""Tiny untrained checkpoints for pipeline tests (the format `explainface train` writes)."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_checkpoint(
    path: Path, name: str = "vgg13", width: float = 0.125, input_size: int = 112, embedding_dim: int = 32, seed: int = 0
) -> Path:
    from explainface.models import create_model
    from explainface.training.checkpoint import save_checkpoint
    from explainface.training.config import load_config

    overrides = [f"model.name={name}", f"model.width={width}", f"model.input_size={input_size}",
                 f"model.embedding_dim={embedding_dim}"]  # fmt: skip
    cfg = load_config(None, overrides)
    torch.manual_seed(seed)
    net = create_model(name, width=width, input_size=input_size, embedding_dim=embedding_dim)
    state = {"config": cfg.to_dict(), "step": 0}
    return save_checkpoint(path, {f"model.{k}": v for k, v in net.state_dict().items()}, state)
