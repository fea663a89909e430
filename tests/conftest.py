import sys
from pathlib import Path

# tests/reference.py holds the slow float64 references; make it importable as `reference`.
sys.path.insert(0, str(Path(__file__).parent))

# Fuzzing (hypothesis): a short default profile keeps the test command fast; `HYPOTHESIS_PROFILE=long` (see
# scripts/fuzz.sh) tries many more inputs. The deadline turns a hang or a pathological slowdown into a failure.
try:
    import os
    from datetime import timedelta

    from hypothesis import HealthCheck, settings

    settings.register_profile("default", max_examples=60, deadline=timedelta(seconds=2), derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    settings.register_profile("long", max_examples=2000, deadline=timedelta(seconds=5),
                              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
except ImportError:  # hypothesis is in the `test` extra; without it the fuzz tests skip (importorskip)
    pass
