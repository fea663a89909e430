"""Evaluation: face verification (docs/method.md §5: `verification`, `verify`) and the explainability metrics
(docs/method.md §7: `explainability`, `peaks`, the `explain` pipeline)."""
