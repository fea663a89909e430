"""Grad-CAM of the similarity of two faces (paper Figure 1), through Captum's `LayerGradCam`.

For face A the explained scalar is cos(emb(A), emb(B)) with B's embedding held fixed (and the other way round),
so the heatmap shows which regions of A make it look like B. Grad-CAM (Selvaraju et al. 2017): channel weights =
spatial mean of d cos / d A_c at the target layer, heat = ReLU(sum_c w_c A_c), upsampled and scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explainface.models.capture import find_module, layer_name
from explainface.models.maps import upsample_maps
from explainface.models.modes import eval_mode


def _as_batch(image: torch.Tensor | np.ndarray, model: nn.Module) -> torch.Tensor:
    """uint8 RGB [S, S, 3] (normalised as in training) or a float tensor [3, S, S] / [1, 3, S, S] -> [1, 3, S, S]."""
    if isinstance(image, np.ndarray):
        from explainface.inputs import to_tensor

        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"an image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
        image = to_tensor(image)
    x = image if image.ndim == 4 else image.unsqueeze(0)
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


def similarity_cam(
    model: nn.Module, x: torch.Tensor | np.ndarray, reference: torch.Tensor, layer: str | None = None
) -> torch.Tensor:
    """Raw Grad-CAM [h, w] at `layer` (default `model.target_layer`) of cos(emb(x), reference), ReLU applied."""
    from captum.attr import LayerGradCam

    xb = _as_batch(x, model)
    ref = reference.detach().to(xb).reshape(1, -1)

    def cosine(inp: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(model(inp), ref.expand(inp.shape[0], -1), dim=1)

    cam = LayerGradCam(cosine, find_module(model, layer_name(model, layer)))
    return cam.attribute(xb, relu_attributions=True)[0, 0].detach()


def normalise_heat(cam: torch.Tensor, size: int | tuple[int, int]) -> np.ndarray:
    """Raw CAM [h, w] -> float32 [S, S] in [0, 1]: bilinear upsampling, then division by the maximum (0 stays 0)."""
    heat = upsample_maps(cam, size).clamp_min(0)
    top = float(heat.max())
    return (heat / top if top > 0 else heat).cpu().numpy()


def similarity_gradcam(
    model: nn.Module,
    image_a: torch.Tensor | np.ndarray,
    image_b: torch.Tensor | np.ndarray,
    layer: str | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """(cos(emb(A), emb(B)), heat A, heat B): Grad-CAM of the similarity for each face with the other one fixed.

    Heats are float32 [S, S] in [0, 1] at the input size. The model runs in eval mode (BatchNorm statistics,
    no dropout) and is put back in its previous mode afterwards.
    """
    with eval_mode(model):
        a, b = _as_batch(image_a, model), _as_batch(image_b, model)
        with torch.no_grad():
            emb_a, emb_b = model(a), model(b)
        similarity = float(F.cosine_similarity(emb_a, emb_b, dim=1)[0])
        heat_a = normalise_heat(similarity_cam(model, a, emb_b, layer), a.shape[-2:])
        heat_b = normalise_heat(similarity_cam(model, b, emb_a, layer), b.shape[-2:])
    return similarity, heat_a, heat_b
