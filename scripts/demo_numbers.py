"""The quick demo's numbers with the training steps fixed, as JSON: to check that a refactor changed no number.

The demo sizes its training to a time budget (a measured step time and the time the export took), so two runs
train different numbers of steps; this fixes both, then prints and writes every model's metrics.

    .venv/bin/python scripts/demo_numbers.py runs/demo_after.json
    PYTHONPATH=/path/to/old/checkout/src .venv/bin/python scripts/demo_numbers.py runs/demo_before.json \
        --module explainface.demo        # a checkout from before issue 16, where the demo lived there
    diff runs/demo_before.json runs/demo_after.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
import types


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_json")
    p.add_argument("--module", default="explainface.experiments.demo", help="where the checkout's demo lives")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    mod = importlib.import_module(args.module)
    mod.calibrate_step_seconds = lambda plan, out, steps=8: 0.5  # the steps no longer depend on the step time
    mod.time = types.SimpleNamespace(perf_counter=lambda: 0.0)  # nor on how long the export took
    plan = mod.DemoPlan.quick(minutes=0.5, seed=args.seed)
    plan.explain_images = 20
    with tempfile.TemporaryDirectory() as out:
        res = mod.demo(out, plan=plan, progress=False)
    models = {name: {k: v for k, v in m.items() if k not in ("train_seconds", "checkpoint")}
              for name, m in res["models"].items()}  # fmt: skip
    numbers = {"steps": res["steps_per_network"], "models": models}
    with open(args.out_json, "w") as f:
        json.dump(numbers, f, indent=1, sort_keys=True)
    print(json.dumps(numbers, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
