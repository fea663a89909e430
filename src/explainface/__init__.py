"""explainface: explainable face recognition with the Explainable Channel Loss (ECLoss).

Library first: every CLI command is a thin layer over public functions, and the ones a notebook needs are
here, imported on first use (so `import explainface` stays light)::

    import explainface as ef

    net = ef.create_model("vgg16_bn", width=0.25)
    summary = ef.train("configs/cpu/vgg16_bn_ecloss.yaml", "runs/ecloss", overrides=["optim.max_steps=200"])
    faces = ef.export_synthetic("runs/faces", identities=0, per_identity=4, heldout_identities=20)
    scores = ef.verify(summary["checkpoint"], faces["pairs_path"])              # results returned ...
    metrics = ef.explain(summary["checkpoint"], "synthetic", out_dir="runs/ex")  # ... and written given out_dir

(The README's notebook example is the same, at a size that runs in seconds, and is tested.)

Every pipeline function takes the model as a checkpoint path or an `nn.Module`, the faces as `faces` (a folder,
"synthetic", or image paths), and returns its results; given `out_dir` it also writes them there.
"""

from __future__ import annotations

import importlib

from explainface.version import __version__

#: name -> module that defines it.
_EXPORTS = {
    # models and losses
    "create_model": "explainface.models",
    "list_models": "explainface.models",
    "describe_model": "explainface.models",
    "FeatureCapture": "explainface.models",
    "ECLoss": "explainface.losses",
    "create_regularizer": "explainface.losses",
    "list_regularizers": "explainface.losses",
    # data
    "SyntheticFaces": "explainface.synthetic",
    "export_synthetic": "explainface.synthetic.export",
    "read_pairs": "explainface.readers.pairs",
    "PairList": "explainface.readers.pairs",
    "crop_folder": "explainface.faces.crop",
    "to_tensor": "explainface.inputs",
    # train
    "TrainConfig": "explainface.training.config",
    "load_config": "explainface.training.config",
    "Trainer": "explainface.training.trainer",
    "train": "explainface.training.trainer",
    "retrofit": "explainface.training.retrofit",
    "load_model": "explainface.training.checkpoint",
    # evaluate, explain, report
    "verify": "explainface.evaluate.verification_pipeline",
    "explain": "explainface.evaluate.explainability_pipeline",
    "faithfulness": "explainface.explanations.faithfulness",
    "visualize": "explainface.explanations.visualize",
    "why": "explainface.explanations.why_pipeline",
    "build_report": "explainface.report.build",
    "ExperimentPlan": "explainface.experiments.run",
    "experiment": "explainface.experiments.run",
    "demo": "explainface.experiments.demo",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
