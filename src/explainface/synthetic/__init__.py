"""The embedded synthetic face generator (docs/method.md §10): identities, nuisance, landmarks, part maps.

The torch Dataset is imported lazily, so export workers that only render do not pay for torch.
"""

from explainface.synthetic.generator import (
    DIFFICULTIES,
    HELDOUT_FIRST_IDENTITY,
    FaceSample,
    SyntheticFaces,
)

_LAZY = {"SyntheticFaceDataset", "identity_numbers"}


def __getattr__(name: str):
    if name in _LAZY:
        from explainface.synthetic import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DIFFICULTIES",
    "HELDOUT_FIRST_IDENTITY",
    "FaceSample",
    "SyntheticFaceDataset",
    "SyntheticFaces",
    "identity_numbers",
]
