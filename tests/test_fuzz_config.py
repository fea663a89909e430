"""Fuzzing the config loader (issue 15): whatever the YAML files, ``base:`` chains and overrides, `load_config`
returns a `TrainConfig` (which survives the checkpoint round trip) or raises an `InputError` (a ValueError) or a
`FileNotFoundError` whose message names the file or the override -- never another exception, never a hang (the
hypothesis profile's deadline, tests/conftest.py). Nothing here trains. ``scripts/fuzz.sh`` runs many more."""

from __future__ import annotations

import dataclasses
import inspect
import math
import tempfile
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hypothesis")
from hypothesis import event, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from explainface.errors import InputError  # noqa: E402
from explainface.losses.registry import list_regularizers, regularizer_params  # noqa: E402
from explainface.models import list_models  # noqa: E402
from explainface.training.config import TrainConfig, config_from_dict, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL_BASE = ROOT / "configs" / "base.yaml"

# the registries and lazy imports the checks use, loaded now: the first example must not pay for them (deadline)
load_config(REAL_BASE, ["regularizers=[{name: ecloss}]", "data.difficulty=hard"])

SECTIONS = {f.name: f.default_factory() for f in dataclasses.fields(TrainConfig) if f.name != "regularizers"}
FIELDS = {name: {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)} for name, obj in SECTIONS.items()}
REGULARIZERS = [n for n in list_regularizers() if not n.startswith("test_")]
# an option without a default (xcos's reference) starts as null
OPTIONS = {n: {k: None if v is inspect.Parameter.empty else v for k, v in regularizer_params(n).items()}
           for n in REGULARIZERS}  # fmt: skip
OPTION_NAMES = sorted({k for opts in OPTIONS.values() for k in opts} | {"name", "beta", "start"})

WORDS = [*list_models(), "softmax", "arcface", "cosface", "partial_fc", "synthetic", "folder", "recordio", "auto",
         "off", "bf16", "fp16", "cpu", "cuda", "cuda:0", "cuda:99", "mps", "cosine", "step", "constant", "easy",
         "hard", "none", "full", "max", "l2", "auto:0.2", "auto:-1", "ecloss", "yin", "xcos", "", " ", "\0", "..",
         "null", "~", "1e400", "nan", "-0"]  # fmt: skip
EDGE_NUMBERS = [0, 1, -1, 2, 8, 2**31, 2**63, 10**400, -(10**30), 0.5, 1.0, -0.0, 1e-300, 1e308, math.nan, math.inf]

junk_keys = st.one_of(st.text(max_size=6), st.integers(-3, 3), st.none(), st.booleans())
keys = st.one_of(st.sampled_from([*SECTIONS, "regularizers", "regularizer", "base", *OPTION_NAMES]), junk_keys)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.text(max_size=10),
    st.sampled_from(WORDS),
)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=6)  # fmt: skip


def _field_value(default):
    return st.one_of(st.just(default), values)  # half of the time a valid value: deeper checks get reached


sections = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(
            st.fixed_dictionaries({}, optional={k: _field_value(v) for k, v in fields.items()}),
            st.dictionaries(st.one_of(st.sampled_from(sorted(fields)), junk_keys), values, max_size=3),
            values,
        )
        for name, fields in FIELDS.items()
    },
)
regularizer_items = st.one_of(
    *[
        st.fixed_dictionaries({"name": st.just(n)}, optional={k: _field_value(v) for k, v in
                                                              {**OPTIONS[n], "beta": "auto", "start": 0}.items()})
        for n in REGULARIZERS
    ],
    values,
)  # fmt: skip
configs = st.one_of(
    st.builds(lambda s, r: {**s, **r}, sections, st.fixed_dictionaries({}, optional={
        "regularizers": st.one_of(st.lists(regularizer_items, max_size=2), values),
        "regularizer": st.one_of(st.fixed_dictionaries({"name": st.sampled_from(["ecloss", "none"])},
                                                       optional={"k": values, "beta": values}), values),
    })),
    st.dictionaries(keys, values, max_size=4),
    values,
)  # fmt: skip

# a file's `base:`: none, another generated file (itself or a loop too), a missing one, a directory, the real base
bases = st.one_of(
    st.none(),
    st.integers(0, 2),
    st.sampled_from(["missing.yaml", ".", "", "sub/../missing.yaml", str(REAL_BASE), "\0x"]),
    values,
)
NASTY_TEXT = ["[" * 300, "a: &x [*x]\n", "optim: &a {lr: *a}\n", "!!python/object/apply:os.system [ls]\n",
              "optim:\n\tlr: 1\n", "key: value: other\n", "%YAML 9.9\n---\na: 1\n", "---\na: 1\n---\nb: 2\n",
              "\ufeffoptim: {lr: 0.1}\n", "optim: {lr: 0.1}\noptim: {lr: 0.2}\n", "? [a, b]\n: 1\n",
              "optim: {lr: 1e999}\n", "run: {seed: 99999999999999999999999999999}\n"]  # fmt: skip


def _mutate(text: str, data) -> str:
    """`text` with a few characters inserted, deleted or swapped: mostly broken YAML, sometimes still a config."""
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "swap"]))
        piece = data.draw(st.sampled_from(list(":{}[]-,&*!'\"#\n\t ") + ["\0", "\x85", "é"]))
        if op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + piece + text[i + 1 :]
    return text


def _dump(value, one_line: bool = False) -> str:
    """YAML text of `value` (keys of mixed types unsorted); `one_line`: flow style, for an override's value."""
    text = yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=True if one_line else None,
                          width=1_000_000)  # fmt: skip
    return text.removesuffix("\n...\n").strip() if one_line else text


def _override_text(value) -> str:
    return _dump(value, one_line=True)


override_keys = st.one_of(
    st.builds(lambda s, k: f"{s}.{k}", st.sampled_from(sorted(FIELDS)),
              st.one_of(st.sampled_from(sorted({k for f in FIELDS.values() for k in f})), st.text(max_size=4))),
    st.builds(lambda i, k: f"regularizers.{i}.{k}", st.sampled_from(["0", "1", "00", "-1", "x", "99999999999"]),
              st.sampled_from(OPTION_NAMES)),
    st.sampled_from(["regularizers", "regularizer", "optim", "base", "", ".", "optim..lr", " optim.lr "]),
    st.text(max_size=12),
)  # fmt: skip
# every field at its default: overrides that load, so that a list of them reaches the later checks
GOOD_OVERRIDES = [f"{s}.{k}={_override_text(v)}" for s, fields in FIELDS.items() for k, v in fields.items()]
overrides = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", override_keys, st.one_of(values.map(_override_text), st.text(max_size=8))),
        st.text(max_size=16),
        st.sampled_from(GOOD_OVERRIDES),
        st.sampled_from(GOOD_OVERRIDES),
    ),
    max_size=3,
)


def _check(load, places: list[str]) -> None:
    """`load()` gives a config that survives the checkpoint round trip, or a one-line-able error naming one of
    `places` (a file, "override", the default "config")."""
    try:
        cfg = load()
    except (InputError, FileNotFoundError) as e:
        message = str(e)
        event(f"rejected: {type(e).__name__}")
        assert message.strip() and len(message) < 5000, message[:300]
        assert any(p in message for p in places), message
        return
    event("loaded")
    assert isinstance(cfg, TrainConfig)
    assert config_from_dict(cfg.to_dict()) == cfg
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg  # what the trainer writes


@given(files=st.lists(st.tuples(configs, bases), min_size=1, max_size=3), extra=overrides)
def test_fuzz_generated_config_files_with_base_chains_and_overrides(files, extra):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for i, (config, base) in enumerate(files):
            if isinstance(config, dict) and base is not None:
                config = {**config, "base": f"c{base}.yaml" if isinstance(base, int) else base}
            (d / f"c{i}.yaml").write_text(_dump(config), encoding="utf-8")
        _check(lambda: load_config(d / "c0.yaml", extra), [tmp, "override"])


@given(config=configs, data=st.data())
def test_fuzz_broken_yaml_text(config, data):
    text = data.draw(st.one_of(st.just(_dump(config)), st.sampled_from(NASTY_TEXT), st.text(max_size=40)))
    text = _mutate(text, data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass") + data.draw(st.sampled_from([b"", b"\xff\xfe"])))
        _check(lambda: load_config(path), [tmp])


@given(extra=overrides)
def test_fuzz_overrides_alone(extra):
    _check(lambda: load_config(None, extra), ["override", "config"])


@given(config=configs)
def test_fuzz_checkpoint_config_dicts(config):
    _check(lambda: config_from_dict(config), ["checkpoint config"])
