"""Fuzzing checkpoint loading (issue 15): a damaged, foreign or hand-edited checkpoint either loads or fails with
a `ValueError` / `OSError` whose message names the file; never another exception, never a hang (the hypothesis
profile's deadline turns a hang into a failure). Mutations start from valid tiny checkpoints: one plain, one with
an xCos pair head. `HYPOTHESIS_PROFILE=long` tries many more inputs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from checkpoints import tiny_checkpoint  # noqa: E402
from explainface.errors import describe  # noqa: E402

# ---- the valid starting points -------------------------------------------------------------------------------


def _xcos_checkpoint(path: Path) -> Path:
    """A tiny checkpoint with an xCos pair head saved the way the trainer saves one (options + tensor prefix)."""
    from explainface.models import create_model, describe_model
    from explainface.models.pair_heads import create_pair_head
    from explainface.training.checkpoint import save_checkpoint
    from explainface.training.config import load_config

    kw = {"width": 0.0625, "input_size": 112, "embedding_dim": 8}
    cfg = load_config(None, ["model.name=vgg13", *(f"model.{k}={v}" for k, v in kw.items())])
    torch.manual_seed(0)
    net = create_model("vgg13", **kw)
    head = create_pair_head("xcos", in_channels=describe_model("vgg13", **kw)["target_shape"][0], channels=8)
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    tensors.update({f"reg.xcos.head.{k}": v for k, v in head.state_dict().items()})
    state = {"config": cfg.to_dict(), "step": 3,
             "pair_heads": {"xcos": {"options": head.options(), "prefix": "reg.xcos.head"}}}  # fmt: skip
    return save_checkpoint(path, tensors, state)


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, dict]:
    """{kind: {"bytes", "tensors", "meta"}} of the valid checkpoints, and a scratch file the examples overwrite."""
    d = tmp_path_factory.mktemp("fuzz")
    out = {}
    for kind, path in (("plain", tiny_checkpoint(d / "plain.safetensors", width=0.0625, embedding_dim=8)),
                       ("xcos", _xcos_checkpoint(d / "xcos.safetensors"))):  # fmt: skip
        with safe_open(str(path), "pt") as f:
            out[kind] = {"bytes": path.read_bytes(), "meta": dict(f.metadata()),
                         "tensors": {k: f.get_tensor(k) for k in f.keys()}}  # fmt: skip
    out["scratch"] = d / "fuzzed.safetensors"
    return out


def test_the_starting_points_load(bases, tmp_path):
    from explainface.training.checkpoint import load_model

    for kind in ("plain", "xcos"):
        path = tmp_path / f"{kind}.safetensors"
        path.write_bytes(bases[kind]["bytes"])
        loaded = load_model(path)
        assert set(loaded.pair_heads) == ({"xcos"} if kind == "xcos" else set())


# ---- the property --------------------------------------------------------------------------------------------


def _loads_or_names_the_file(path: Path) -> bool:
    """Load `path`: True when it loads, False when it raises ValueError/OSError naming it (else the test fails)."""
    from explainface.training.checkpoint import load_model

    try:
        load_model(path)  # load_checkpoint, then the network and its pair heads from what it read
    except (ValueError, OSError) as e:  # the CLI's user errors; anything else fails the test with its traceback
        message = describe(e)
        assert str(path) in message, f"{type(e).__name__} does not name the file: {message}"
        assert "\n" not in message and len(message) < 3000, f"not one short line: {message[:500]!r}"
        if _safetensors_reads(path):  # the error must be about the content, not blame the format
            assert "not a safetensors" not in message and "not a readable safetensors" not in message, message
        return False
    return True


def _safetensors_reads(path: Path) -> bool:
    try:
        with safe_open(str(path), "pt") as f:
            for k in f.keys():
                f.get_tensor(k)
        return True
    except Exception:  # any failure of safetensors itself
        return False


def _write(bases, data: bytes) -> Path:
    path = bases["scratch"]
    path.write_bytes(data)
    return path


def _save(bases, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    path = bases["scratch"]
    save_file(tensors, str(path), metadata=meta)
    return path


KINDS = st.sampled_from(["plain", "xcos"])


def _header_end(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


@given(kind=KINDS, flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.booleans(),
                                            st.integers(1, 255)), min_size=1, max_size=8))  # fmt: skip
def test_random_byte_flips(bases, kind, flips):
    """XOR random bytes, in the header (JSON, lengths, offsets) or anywhere in the file (the weights)."""
    data = bytearray(bases[kind]["bytes"])
    end = _header_end(data)
    for where, in_header, xor in flips:
        i = int(where * (end if in_header else len(data)))
        data[i] ^= xor
    _loads_or_names_the_file(_write(bases, bytes(data)))


@given(kind=KINDS, cut=st.floats(0, 1, exclude_max=True), in_header=st.booleans())
def test_truncation(bases, kind, cut, in_header):
    data = bases[kind]["bytes"]
    n = int(cut * (_header_end(data) if in_header else len(data)))
    _loads_or_names_the_file(_write(bases, data[:n]))


@given(data=st.one_of(st.binary(max_size=2048),
                      st.binary(min_size=8, max_size=2048).map(lambda b: b"\x80\x04" + b),  # a pickle
                      st.binary(max_size=2048).map(lambda b: b"PK\x03\x04" + b)))  # a zip: torch.save  # fmt: skip
def test_random_bytes(bases, data):
    _loads_or_names_the_file(_write(bases, data))


JSON_LEAVES = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)


def _json_containers(children):
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)


JSON = st.recursive(JSON_LEAVES, _json_containers, max_leaves=12)

#: A valid safetensors header entry, so that the random JSON reaches the metadata and tensor checks.
DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "C64", "U16", "XX"]


@given(header=st.one_of(
    JSON,
    st.dictionaries(st.sampled_from(["__metadata__", "model.features.conv1_1.weight", "model.x", "a"]),
                    st.one_of(JSON, st.fixed_dictionaries({"dtype": st.sampled_from(DTYPES),
                                                           "shape": st.lists(st.integers(-1, 9), max_size=4),
                                                           "data_offsets": st.lists(st.integers(-1, 600), min_size=0,
                                                                                    max_size=3)})),
                    max_size=4)),
    body=st.binary(max_size=512), pad=st.booleans())  # fmt: skip
def test_random_header_json(bases, header, body, pad):
    """A safetensors layout (length, JSON header, bytes) around random JSON: random tensors entries and metadata."""
    text = json.dumps(header).encode()
    if pad:  # safetensors pads headers to 8 bytes with spaces
        text += b" " * (-len(text) % 8)
    _loads_or_names_the_file(_write(bases, struct.pack("<Q", len(text)) + text + body))


STATE_PATHS = [
    (), ("config",), ("config", "model"), ("config", "model", "name"), ("config", "model", "width"),
    ("config", "model", "input_size"), ("config", "model", "embedding_dim"), ("config", "model", "target_layer"),
    ("config", "model", "dropout"), ("config", "head"), ("config", "regularizers"), ("config", "optim"),
    ("config", "data"), ("step",), ("pair_heads",), ("pair_heads", "xcos"), ("pair_heads", "xcos", "options"),
    ("pair_heads", "xcos", "options", "in_channels"), ("pair_heads", "xcos", "options", "channels"),
    ("pair_heads", "xcos", "options", "grid"), ("pair_heads", "xcos", "prefix"),
]  # fmt: skip
#: Plausible wrong values besides random JSON: other networks, widths, sizes, layer names.
NEAR_MISSES = st.sampled_from(["vgg16_bn", "vgg13_bn", "resnet", 0.25, 0.0625, 8, 7.99, 224, 113, 64, 0, -1, 1e308,
                               "features.relu4_2", "features", "", "target", "pool", "reg.xcos", "model"])  # fmt: skip


@given(kind=KINDS, edits=st.lists(st.tuples(st.sampled_from(STATE_PATHS), st.booleans(), NEAR_MISSES | JSON),
                                  min_size=1, max_size=4),
       meta_edit=st.sampled_from(["none", "drop format", "drop state", "format", "state text"]),
       text=st.text(max_size=40))  # fmt: skip
def test_random_metadata_values_and_types(bases, kind, edits, meta_edit, text):
    """Replace (or delete) values anywhere in the saved state with random JSON of any type; damage the metadata."""
    state = json.loads(bases[kind]["meta"]["state"])
    for path, delete, value in edits:
        if not path:
            state = value
            continue
        node = state
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            if delete:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    meta = {"format": bases[kind]["meta"]["format"], "state": json.dumps(state)}
    if meta_edit == "drop format":
        del meta["format"]
    elif meta_edit == "drop state":
        del meta["state"]
    elif meta_edit == "format":
        meta["format"] = text
    elif meta_edit == "state text":
        meta["state"] = text
    _loads_or_names_the_file(_save(bases, bases[kind]["tensors"], meta))


TORCH_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int8,
                torch.uint8, torch.bool, torch.float8_e4m3fn, torch.complex64]  # fmt: skip
SHAPES = st.lists(st.integers(0, 5), max_size=4)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Casting complex values to real")  # the mutation itself, complex -> real
@given(kind=KINDS, ops=st.lists(st.tuples(
    st.sampled_from(["shape", "dtype", "drop", "add", "rename", "nan", "inf", "empty"]),
    st.integers(0, 10**6), SHAPES, st.sampled_from(TORCH_DTYPES), st.text("abcdefghij._", max_size=12)),
    min_size=1, max_size=5))  # fmt: skip
def test_wrong_tensor_shapes_dtypes_and_missing_or_extra_tensors(bases, kind, ops):
    tensors = dict(bases[kind]["tensors"])
    for op, pick, shape, dtype, name in ops:
        if not tensors:
            break
        key = sorted(tensors)[pick % len(tensors)]
        t = tensors[key]
        if op == "shape":
            tensors[key] = torch.zeros(shape, dtype=t.dtype)
        elif op == "dtype":
            tensors[key] = t.to(dtype)
        elif op == "drop":
            del tensors[key]
        elif op == "add":
            tensors[f"model.{name}" if pick % 2 else f"reg.xcos.head.{name}"] = torch.zeros(shape, dtype=dtype)
        elif op == "rename":
            tensors[f"{key}{name}"] = tensors.pop(key)
        elif op in ("nan", "inf") and t.is_floating_point() and t.numel():
            t = t.clone()
            t.view(-1)[pick % t.numel()] = float(op)
            tensors[key] = t
        elif op == "empty":
            tensors[key] = torch.zeros(0, dtype=t.dtype)
    _loads_or_names_the_file(_save(bases, tensors, bases[kind]["meta"]))


def test_a_header_length_whose_first_byte_is_a_pickle_opcode_still_loads(tmp_path):
    """Found by `test_random_metadata_values_and_types`: a safetensors file starts with its header's length, so
    its first byte can be 0x80, the first byte of a pickle; such a valid checkpoint was refused as "a pickle"."""
    from explainface.models import create_model
    from explainface.training.checkpoint import load_model, save_checkpoint
    from explainface.training.config import load_config

    cfg = load_config(None, ["model.name=vgg13", "model.width=0.0625", "model.input_size=112", "model.embedding_dim=8"])
    net = create_model("vgg13", width=0.0625, input_size=112, embedding_dim=8)
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / "p.safetensors"
    for pad in range(0, 512, 4):
        save_checkpoint(path, tensors, {"config": cfg.to_dict(), "step": 0, "note": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert load_model(path).label.startswith("vgg13")


def test_a_folder_and_a_missing_file(tmp_path):
    (tmp_path / "dir.safetensors").mkdir()
    assert not _loads_or_names_the_file(tmp_path / "dir.safetensors")
    assert not _loads_or_names_the_file(tmp_path / "missing.safetensors")
