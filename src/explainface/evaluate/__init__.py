"""Evaluation: face verification (SPEC §5); the explainability metrics come later (SPEC §7)."""
