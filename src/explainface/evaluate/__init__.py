"""Evaluation: face verification (SPEC §5: `verification`, `verify`) and the explainability metrics (SPEC §7:
`explainability`, `peaks`, the `explain` pipeline)."""
