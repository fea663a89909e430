"""Pair attributions: one registry of methods that explain a pair's similarity by face parts (`base`), one file
per method. Importing the package registers them all."""

from explainface.explanations.attributions import (  # noqa: F401  (registration)
    channels,
    gradcam,
    gradient,
    occlusion,
    random,
    rise,
    xcos,
)
from explainface.explanations.attributions.base import (
    ATTRIBUTIONS,
    PARTS,
    Attribution,
    PairContext,
    attribute,
    attribution_names,
    get_attribution,
    part_scores,
    register_attribution,
)

__all__ = [
    "ATTRIBUTIONS",
    "PARTS",
    "Attribution",
    "PairContext",
    "attribute",
    "attribution_names",
    "get_attribution",
    "part_scores",
    "register_attribution",
]
