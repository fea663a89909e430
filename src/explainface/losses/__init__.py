"""Regularisers of the target layer (a registry of names), activation templates, ECLoss, beta controllers."""

from explainface.losses.base import MapRegularizer, Regularizer, StepContext
from explainface.losses.beta import AutoBeta, ConstantBeta, make_beta
from explainface.losses.ecloss import ECLoss, ecloss, mutual_information
from explainface.losses.fit import FitECLoss, SpatialDiversity, channel_consistency, spatial_diversity, template_fit
from explainface.losses.preserve import PreserveEmbedding
from explainface.losses.registry import (
    check_regularizer_params,
    create_regularizer,
    list_regularizers,
    register_regularizer,
    regularizer_params,
)
from explainface.losses.templates import (
    build_templates,
    default_radius,
    full_template_count,
    template_counts,
    template_index,
)
from explainface.losses.xcos import XCosLoss
from explainface.losses.yin import YinLoss, YinSAD

__all__ = [
    "AutoBeta",
    "ConstantBeta",
    "ECLoss",
    "FitECLoss",
    "SpatialDiversity",
    "MapRegularizer",
    "PreserveEmbedding",
    "Regularizer",
    "StepContext",
    "XCosLoss",
    "YinLoss",
    "YinSAD",
    "check_regularizer_params",
    "create_regularizer",
    "list_regularizers",
    "register_regularizer",
    "regularizer_params",
    "build_templates",
    "channel_consistency",
    "spatial_diversity",
    "template_fit",
    "default_radius",
    "ecloss",
    "full_template_count",
    "make_beta",
    "mutual_information",
    "template_counts",
    "template_index",
]
