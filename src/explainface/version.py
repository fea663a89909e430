"""The package's version (one place: the package, pyproject.toml and the files the pipelines write read it here)."""

__version__ = "0.1.0"
