"""The retrofit: explainability added to a pretrained recogniser without retraining it.

A short fine-tune of the pretrained network in which ECLoss-fit's map terms (`losses.fit.FIT_RECIPE`: template
fit, channel diversity, consistency in the face's frame) make its target layer part-like, while the preservation
term (`losses.preserve`) holds its embedding to the original network's. Without labels: the identity loss is off
(``head.name: none``), so any folders of face crops do (``data.kind: images``); with identity folders it can stay
on (``identity_loss=True``). The recipe (`apply_retrofit`, also the experiment's method ``retrofit``):

* regularisers ``ecloss_fit`` (FIT_RECIPE's options, on from step 0, a constant beta: auto beta is a ratio to the
  identity loss's gradient, which a retrofit does not have) and ``preserve`` (1 - cos of the embeddings);
* SGD at a small learning rate with a short warm-up, no weight decay (the weights are pretrained: nothing to
  shrink them towards), BatchNorm statistics frozen (``optim.freeze_bn``: the network keeps its own, and the
  fine-tuned network equals the original at step 0, so the preservation term starts at 0).

`retrofit(model, faces, out_dir)` builds the config (`retrofit_config`) from a registered network that loads its
own weights (``dlib_resnet``), a weights file (insightface's ``backbone.pth``: the architecture is read off the
tensors, `pretrained.infer_model`) or an explainface checkpoint, trains (resuming what `out_dir` holds: the same
call continues), and writes an ordinary checkpoint that ``verify``/``explain``/``why``/``report`` read unchanged,
plus ``retrofit.json``: the embedding's cosine to the original's on the faces. docs/decisions.md "The retrofit".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from explainface.errors import InputError
from explainface.files import atomic_write_json
from explainface.losses.fit import FIT_RECIPE
from explainface.training.config import TrainConfig, load_config, parse_overrides

#: The retrofit's defaults (docs/decisions.md "The retrofit" has the measurements behind them).
RETROFIT_DEFAULTS: dict[str, Any] = {
    "beta": 1.0,  # ECLoss-fit's weight (constant)
    "preserve": 30.0,  # the preservation term's weight: chosen on HELEN's training faces (docs/decisions.md)
    "lr": 0.003,
    "steps": 1000,
    "warmup": 50,  # at most; and at most 5% of the steps
}
#: How many of the faces `retrofit` measures the embedding's cosine to the original's on (retrofit.json).
CHECK_FACES = 256


def apply_retrofit(cfg: TrainConfig, identity_loss: bool = False, beta: float = RETROFIT_DEFAULTS["beta"],
                   preserve: float = RETROFIT_DEFAULTS["preserve"], form: str = "cosine",
                   lr: float = RETROFIT_DEFAULTS["lr"], **fit_options: Any) -> None:  # fmt: skip
    """Edit `cfg` (a pretrained network's config) in place into the retrofit recipe (module docstring):
    `fit_options` override FIT_RECIPE's map-term options; ``start`` too (default 0: from the first step)."""
    from explainface.training.pretrained import original_identity_layers

    for name, value in (("beta", beta), ("preserve", preserve), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"retrofit: {name} must be a number >= 0, got {value!r}")
    fit = {k: v for k, v in FIT_RECIPE.items() if k not in ("beta", "start")}
    start = fit_options.pop("start", 0)
    original = original_identity_layers(cfg.model)  # the reference runs as the weights' authors ran it
    cfg.regularizers = [
        {"name": "ecloss_fit", "beta": float(beta), "start": start, **fit, **fit_options},
        {"name": "preserve", "beta": float(preserve), "form": form, "identity_layers": original},
    ]
    if not identity_loss:
        cfg.head.name = "none"
    cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.freeze_bn = float(lr), 0.0, True


def _user_model_keys(overrides: Sequence[str]) -> dict[str, Any]:
    """The ``model.*`` values the user's overrides set (they win over what the weights say)."""
    model = parse_overrides(list(overrides)).get("model", {})
    return model if isinstance(model, dict) else {}


def model_overrides(model: str | Path, overrides: Sequence[str] = ()) -> list[str]:
    """``model.*`` overrides for retrofitting `model`: an explainface checkpoint (its network), a weights file (the
    network its tensors fit), or a registered network that loads its own weights. `InputError` otherwise."""
    from explainface.models import list_models
    from explainface.training.pretrained import infer_model, is_explainface_checkpoint, loads_own_weights

    path = Path(model)
    if path.is_file() and is_explainface_checkpoint(path):
        from explainface.training.checkpoint import load_checkpoint
        from explainface.training.config import config_from_dict

        m = config_from_dict(load_checkpoint(path)[1].get("config") or {}, f"{path}: config").model
        keys = {"name": m.name, "width": m.width, "input_size": m.input_size, "embedding_dim": m.embedding_dim,
                "target_layer": m.target_layer, "identity_layers": m.identity_layers}  # fmt: skip
    elif path.is_file():
        from explainface.training.pretrained import read_state_dict

        user = _user_model_keys(overrides)
        try:
            keys = infer_model(read_state_dict(path), user.get("name"), user.get("input_size", 112))
        except ValueError as e:
            raise InputError(f"{path}: {e}") from None
    elif str(model) in list_models():
        if not loads_own_weights(str(model)):
            raise InputError(f"--model {model}: this registered network has no pretrained weights of its own; give "
                             f"its weights file (--model backbone.pth)")  # fmt: skip
        keys = {"name": str(model), **_builder_shape(str(model))}
    elif path.exists():
        raise InputError(f"--model {model}: a folder; give a weights file (.pth, .safetensors) or a checkpoint")
    else:
        raise FileNotFoundError(f"--model {model}: no such file, nor a registered network ({', '.join(list_models())})")
    weights = [f"model.weights={json.dumps(str(path.resolve()))}"] if path.is_file() else ["model.weights=null"]
    return [f"model.{k}={json.dumps(v)}" for k, v in keys.items()] + weights


def _builder_shape(name: str) -> dict[str, Any]:
    """width, input size and embedding size of a registered network as its builder makes it by default."""
    from explainface.models import create_model
    from explainface.models.registry import _MODELS

    fixed = getattr(_MODELS[name], "fixed", None)
    if fixed is not None:
        return dict(fixed)
    net = create_model(name)
    return {"width": float(getattr(net, "width", 1.0)), "input_size": int(net.input_size),
            "embedding_dim": int(net.embedding_dim)}  # fmt: skip


def retrofit_config(model: str | Path, faces: str | Path | Sequence[str | Path], steps: int | None = None,
                    seed: int = 0, identity_loss: bool = False,
                    overrides: Sequence[str] = ()) -> TrainConfig:  # fmt: skip
    """The retrofit's `TrainConfig` (module docstring); `overrides` (dotted ``key=value``) come last and win."""
    from explainface.readers.unlabelled import find_face_images

    folders = [str(faces)] if isinstance(faces, (str, Path)) else [str(f) for f in faces]
    find_face_images(folders)  # a missing or empty folder is named before anything is built
    if identity_loss and len(folders) != 1:
        raise InputError(f"--identity-loss reads identity folders (root/<identity>/<image>) from one --faces folder, "
                         f"got {len(folders)}")  # fmt: skip
    steps = RETROFIT_DEFAULTS["steps"] if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InputError(f"--steps must be an integer >= 0, got {steps!r}")
    data = ["data.kind=folder", f"data.root={json.dumps(folders[0])}"] if identity_loss else \
        ["data.kind=images", f"data.root={json.dumps(folders)}"]  # fmt: skip
    warmup = min(RETROFIT_DEFAULTS["warmup"], steps // 20)
    base = load_config(None, [*model_overrides(model, overrides), *data, f"optim.max_steps={steps}",
                              f"optim.warmup_steps={warmup}", f"run.seed={seed}", "val.pairs=null"])  # fmt: skip
    apply_retrofit(base, identity_loss=identity_loss)
    return load_config(base, list(overrides))


def retrofit(model: str | Path, faces: str | Path | Sequence[str | Path], out_dir: str | Path,
             steps: int | None = None, seed: int = 0, identity_loss: bool = False, overrides: Sequence[str] = (),
             progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Retrofit `model` (a registered network's name, a weights file or a checkpoint) on the faces under `faces`
    (one folder or several; identity folders with `identity_loss`) into `out_dir`; returns the trainer's summary
    with ``preserved``: the embedding's cosine to the original's on up to 256 of the faces (also retrofit.json).
    Re-running with the same `out_dir` resumes. `explainface retrofit` does the same."""
    from explainface.training.trainer import Trainer

    cfg = retrofit_config(model, faces, steps, seed, identity_loss, overrides)
    summary = Trainer(cfg, out_dir, progress=progress).train()
    summary["preserved"] = preserved_cosine(cfg, summary["checkpoint"])
    atomic_write_json(Path(out_dir) / "retrofit.json", {"model": str(model), "faces": cfg.data.root,
                                                        "preserved": summary["preserved"]})  # fmt: skip
    return summary


@torch.no_grad()
def preserved_cosine(cfg: TrainConfig, checkpoint: str | Path, n: int = CHECK_FACES, batch: int = 32) -> dict:
    """The cosine between the retrofitted network's embedding (`checkpoint`) and the original's (`cfg.model` with
    its weights, as the weights' authors ran it) on the first `n` training faces, both in eval mode:
    ``{"mean", "min", "faces"}``."""
    import copy

    from explainface.training.checkpoint import load_model
    from explainface.training.config import check_device
    from explainface.training.data import build_train_dataset
    from explainface.training.pretrained import build_network, original_identity_layers

    device = check_device(cfg.run.device)
    tuned = load_model(checkpoint, device).model
    m = copy.deepcopy(cfg.model)
    m.identity_layers = original_identity_layers(m)
    original = build_network(m).to(device).eval()
    dataset, _ = build_train_dataset(cfg.data, m.input_size)
    idx = torch.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().long().unique().tolist()
    cos = []
    for i in range(0, len(idx), batch):
        x = torch.stack([dataset[j][0] for j in idx[i : i + batch]]).to(device)
        cos.append(torch.nn.functional.cosine_similarity(tuned(x), original(x), dim=1).cpu())
    c = torch.cat(cos)
    return {"mean": float(c.mean()), "min": float(c.min()), "faces": len(c)}
