"""Training: configs, the trainer (eq. 7 with SGD), safetensors checkpoints, DDP, curves."""

from explainface.training.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from explainface.training.config import TrainConfig, load_config

__all__ = ["TrainConfig", "Trainer", "load_checkpoint", "load_config", "load_model_weights", "save_checkpoint"]


def __getattr__(name: str):
    if name == "Trainer":  # lazy: importing configs should not build the training stack
        from explainface.training.trainer import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
