"""Losses on the target layer's maps: activation templates, ECLoss and its beta controllers."""

from explainface.losses.base import MapRegularizer
from explainface.losses.beta import AutoBeta, ConstantBeta, make_beta
from explainface.losses.ecloss import ECLoss, ecloss, mutual_information
from explainface.losses.templates import (
    build_templates,
    default_radius,
    full_template_count,
    template_counts,
    template_index,
)

__all__ = [
    "AutoBeta",
    "ConstantBeta",
    "ECLoss",
    "MapRegularizer",
    "build_templates",
    "default_radius",
    "ecloss",
    "full_template_count",
    "make_beta",
    "mutual_information",
    "template_counts",
    "template_index",
]
