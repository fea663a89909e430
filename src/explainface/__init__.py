"""explainface: explainable face recognition with the Explainable Channel Loss (ECLoss).

Library first: every CLI command is a thin layer over the public functions
re-exported here and in the subpackages (`explainface.losses`, `explainface.models`).
"""

__version__ = "0.1.0"
