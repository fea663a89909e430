"""The embedded synthetic face generator (SPEC §10): identities, nuisance, landmarks, part maps."""

from explainface.data.synthetic.generator import DIFFICULTIES, FaceSample, SyntheticFaces

__all__ = ["DIFFICULTIES", "FaceSample", "SyntheticFaces"]
