"""dlib's serialized deep networks (``.dat``), read and written in pure Python: no dlib needed.

The format is dlib's own (``dlib/serialize.h``, ``dlib/float_details.h``, ``dlib/dnn/{core,layers,loss,input}.h``;
the reading here is ours, checked against the files):

* an integer is a control byte (bit 7: negative; low 4 bits: the number of bytes, 1-8) then that many
  little-endian bytes (0 is ``01 00``);
* a float (``float_details``) is an integer mantissa then an integer exponent: ``m * 2**e`` (exponents 32000,
  32001, 32002 stand for +inf, -inf, NaN); the mantissa has 24 bits for a C++ float, 53 for a double, then
  up to 8 zero low bytes dropped (each adds 8 to the exponent);
* a string is its length (an integer) then its bytes; a bool is the character ``'0'`` or ``'1'``;
* a tensor is the integer 2 (its version), then ``n, k, nr, nc`` and ``n*k*nr*nc`` raw little-endian float32;
  an alias tensor (the shape of a slice of a layer's parameters) is the integer 1 then ``n, k, nr, nc``.

A network is its loss layer, then each layer *wrapping* the next one towards the input: a layer writes its
version, then its whole subnet, then its own fields. So the versions of all layers come first (outermost
first), and the layers' fields come out input to output. Tags and skips write only a version (``1``) and their
subnet; an ``add_prev`` writes only its name. **Which tag a skip or an add refers to is not in the file** (it
is part of the C++ type): a file is read against an architecture, a list of `Op` from input to output, and a
file of another architecture is refused where the first field disagrees.

`read_dlib_net(path, ops)` returns a `DlibNet` (each parametrised layer's arrays in input-to-output order);
`write_dlib_net(path, net)` writes one (dlib reads what it writes: tested with dlib's own loader).
`anet_ops()` is the architecture of dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``,
``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Op", "DlibNet", "DlibFormatError", "anet_ops", "read_dlib_net", "write_dlib_net", "DLIB_MEAN_RGB"]

#: dlib's input_rgb_image_sized defaults: the per-channel means subtracted before dividing by 256.
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
#: The parametrised layer kinds and their arrays' names.
PARAMS = {"con": ("weight", "bias"), "affine": ("gamma", "beta"), "fc": ("weight",)}


class DlibFormatError(ValueError):
    """A file that is not (or not entirely) a dlib network of the expected architecture; names the file."""


@dataclass(frozen=True)
class Op:
    """One layer of a dlib network, input to output.

    ``con``: (filters, nr, nc, stride_y, stride_x, pad_y, pad_x); ``max_pool``/``avg_pool``: (nr, nc, stride_y,
    stride_x, pad_y, pad_x), nr = nc = 0 meaning the whole map; ``fc``: (outputs,) (no bias); ``affine``,
    ``relu``: (); ``tag``/``skip``/``add_prev``: (tag id,).
    """

    kind: str
    args: tuple[int, ...] = ()


@dataclass
class DlibNet:
    """A parsed network: the ops (input to output), the arrays of each parametrised op (same index), the input
    layer's means and size, and the loss (name, margin, distance threshold)."""

    ops: list[Op]
    params: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    mean_rgb: tuple[float, float, float] = DLIB_MEAN_RGB
    input_size: tuple[int, int] = (150, 150)
    loss: str = "loss_metric_2"
    margin: float = 0.04
    dist_thresh: float = 0.6
    #: How each layer was stored (kept so that a file read and written again is the same bytes): the add_layer
    #: version of layer i >= 1, the input add_layer's version (0) and sample expansion factor, each layer's three
    #: flags (set up, gradient stale, output disabled).
    versions: dict[int, int] = field(default_factory=dict)
    expansion: int = 1
    flags: dict[int, tuple[bool, bool, bool]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ the architecture


def _ares(n: int, down: bool) -> list[Op]:
    """One residual block of dlib's ResNet (`ares` / `ares_down`), input to output."""
    stride, pad = (2, 0) if down else (1, 1)
    block = [Op("con", (n, 3, 3, stride, stride, pad, pad)), Op("affine"), Op("relu"),
             Op("con", (n, 3, 3, 1, 1, 1, 1)), Op("affine")]  # fmt: skip
    if down:  # add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<x>>>>>>
        return [Op("tag", (1,)), *block, Op("tag", (2,)), Op("skip", (1,)), Op("avg_pool", (2, 2, 2, 2, 0, 0)),
                Op("add_prev", (2,)), Op("relu")]  # fmt: skip
    return [Op("tag", (1,)), *block, Op("add_prev", (1,)), Op("relu")]  # add_prev1<block<tag1<x>>>


#: dlib's face ResNet, stage by stage (input to output): (channels, first block down-samples, blocks).
ANET_STAGES = ((32, False, 3), (64, True, 4), (128, True, 3), (256, True, 3), (256, True, 1))


def anet_ops(stages=ANET_STAGES, stem: int = 32, embedding: int = 128) -> list[Op]:
    """The ops of dlib's face-recognition ResNet (``anet_type``), input to output; `stages`, `stem` and
    `embedding` shrink it for tests (the same structure at any width)."""
    ops = [Op("con", (stem, 7, 7, 2, 2, 0, 0)), Op("affine"), Op("relu"), Op("max_pool", (3, 3, 2, 2, 0, 0))]
    for channels, down, blocks in stages:
        for b in range(blocks):
            ops += _ares(channels, down and b == 0)
    return ops + [Op("avg_pool", (0, 0, 1, 1, 0, 0)), Op("fc", (embedding,))]


# ------------------------------------------------------------------------------------------------ reading


class _Reader:
    """Primitive reads over the file's bytes; each names the file and the byte offset when it fails."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = memoryview(data), 0, name

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: not a dlib network of the expected architecture: {what} "
                               f"(at byte {self.pos} of {len(self.data)})")  # fmt: skip

    def take(self, n: int, what: str) -> memoryview:
        if n > len(self.data) - self.pos:
            raise DlibFormatError(f"{self.name}: truncated: the file ends in {what} (at byte {self.pos}, "
                                  f"{n} bytes needed, {len(self.data) - self.pos} left)")  # fmt: skip
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self, what: str) -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            raise self.fail(f"bad integer control byte 0x{control:02x} in {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def float(self, what: str) -> float:
        mantissa, exponent = self.int(what), self.int(what)
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        if abs(exponent) > 2000:
            raise self.fail(f"float exponent {exponent} out of range in {what}")
        return math.ldexp(mantissa, exponent)

    def string(self, what: str, limit: int = 64) -> str:
        n = self.int(what)
        if not 0 <= n <= limit:
            raise self.fail(f"a string of {n} bytes where {what} was expected")
        return bytes(self.take(n, what)).decode("latin-1")

    def bool(self, what: str) -> bool:
        ch = self.take(1, what)[0]
        if ch not in (48, 49):
            raise self.fail(f"byte 0x{ch:02x} where a bool ('0' or '1') was expected in {what}")
        return ch == 49

    def expect(self, allowed: tuple[int, ...], what: str) -> int:
        v = self.int(what)
        if v not in allowed:
            raise self.fail(f"{what} version {v} (expected {' or '.join(map(str, allowed))})")
        return v

    def shape(self, version: int, what: str) -> tuple[int, int, int, int]:
        self.expect((version,), what)
        dims = tuple(self.int(what) for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension {dims} in {what}")
        return dims  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        dims = self.shape(2, what)
        count = math.prod(dims)
        raw = self.take(4 * count, what)  # refuses a size beyond the file before allocating anything
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        return self.shape(1, what)


def _read_con(r: _Reader, op: Op, where: str) -> dict[str, np.ndarray]:
    version = r.string(where)
    if version not in ("con_4", "con_5", "con_6"):
        raise r.fail(f"{where} is {version!r}, expected a convolution (con_4/5/6)")
    params = r.tensor(f"{where} parameters")
    stored = (r.int(where), r.int(where), r.int(where), r.int(where), r.int(where), r.int(where), r.int(where))
    if stored != op.args:
        raise r.fail(f"{where}: filters, size, stride, padding {stored}, expected {op.args}")
    filters, biases = r.alias(f"{where} filters"), r.alias(f"{where} biases")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        r.float(f"{where} {name} multiplier")
    use_bias = r.bool(f"{where} use_bias") if version in ("con_5", "con_6") else True
    if version == "con_6":
        r.bool(f"{where} use_relu")
    nw, nb = math.prod(filters), math.prod(biases) if use_bias else 0
    if params.size != nw + nb or filters[0] != op.args[0]:
        raise r.fail(f"{where}: {params.size} parameters for filters {filters} and biases {biases}")
    flat = params.reshape(-1)
    bias = flat[nw:].copy() if nb else np.zeros(filters[0], np.float32)
    return {"weight": flat[:nw].reshape(filters).copy(), "bias": bias}


def _read_affine(r: _Reader, where: str) -> dict[str, np.ndarray]:
    version = r.string(where)
    if version not in ("affine_", "affine_2"):
        raise r.fail(f"{where} is {version!r}, expected an affine layer (affine_/affine_2; bn_ is not supported)")
    params = r.tensor(f"{where} parameters").reshape(-1)
    gamma, beta = r.alias(f"{where} gamma"), r.alias(f"{where} beta")
    mode = r.int(f"{where} mode")
    if version == "affine_2":
        r.bool(f"{where} disabled")
    k = math.prod(gamma)
    if mode != 0 or math.prod(beta) != k or params.size != 2 * k:
        raise r.fail(f"{where}: mode {mode}, {params.size} parameters for gamma {gamma} and beta {beta}")
    return {"gamma": params[:k].copy(), "beta": params[k:].copy()}


def _read_fc(r: _Reader, op: Op, where: str) -> dict[str, np.ndarray]:
    version = r.string(where)
    if version not in ("fc_2", "fc_3"):
        raise r.fail(f"{where} is {version!r}, expected a fully connected layer (fc_2/fc_3)")
    outputs, inputs = r.int(where), r.int(where)
    params = r.tensor(f"{where} parameters")
    r.alias(f"{where} weights"), r.alias(f"{where} biases")
    bias_mode = r.int(f"{where} bias mode")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        r.float(f"{where} {name} multiplier")
    if version == "fc_3":
        r.bool(f"{where} use_bias")
    if bias_mode != 1 or outputs != op.args[0] or params.size != inputs * outputs:
        raise r.fail(f"{where}: {outputs} outputs from {inputs} inputs, bias mode {bias_mode}, {params.size} "
                     f"parameters (expected {op.args[0]} outputs and no bias)")  # fmt: skip
    return {"weight": params.reshape(inputs, outputs).copy()}  # [in, out]: y = x @ W


def _read_pool(r: _Reader, op: Op, where: str) -> None:
    name = f"{op.kind}_2"
    version = r.string(where)
    if version != name:
        raise r.fail(f"{where} is {version!r}, expected {name}")
    stored = tuple(r.int(where) for _ in range(6))
    if stored != op.args:
        raise r.fail(f"{where}: size, stride, padding {stored}, expected {op.args}")


def _read_details(r: _Reader, op: Op, where: str) -> dict[str, np.ndarray] | None:
    """The fields of one layer (its `Op`), checked against the op; the arrays of a parametrised layer."""
    if op.kind == "con":
        return _read_con(r, op, where)
    if op.kind == "affine":
        return _read_affine(r, where)
    if op.kind == "fc":
        return _read_fc(r, op, where)
    if op.kind in ("max_pool", "avg_pool"):
        _read_pool(r, op, where)
    elif op.kind == "relu":
        version = r.string(where)
        if version not in ("relu_", "relu_2"):
            raise r.fail(f"{where} is {version!r}, expected a relu")
        if version == "relu_2" and r.bool(f"{where} disabled"):
            raise r.fail(f"{where}: a disabled relu is not supported")
    elif op.kind == "add_prev":
        if r.string(where) != "add_prev_":
            raise r.fail(f"{where} is not an add_prev")
    else:
        raise ValueError(f"unknown op kind {op.kind!r}")
    return None


def _read_loss(r: _Reader, net: DlibNet) -> None:
    r.expect((1,), "the loss layer")
    net.loss = r.string("the loss layer")
    if net.loss == "loss_metric_2":
        net.margin, net.dist_thresh = r.float("the loss margin"), r.float("the loss distance threshold")
    elif net.loss == "loss_metric_":
        net.margin, net.dist_thresh = 0.1, 0.75
    else:
        raise r.fail(f"loss {net.loss!r} (expected loss_metric_, a face-embedding network)")


def _read_input_layer(r: _Reader, net: DlibNet, op: Op) -> None:
    """The innermost layer: add_layer<op, input_rgb_image_sized> (versions 2 and 3)."""
    version = r.expect((2, 3), "the first layer")
    if r.string("the input layer") != "input_rgb_image_sized":
        raise r.fail("the input layer is not input_rgb_image_sized")
    net.mean_rgb = (r.float("the input mean"), r.float("the input mean"), r.float("the input mean"))
    net.input_size = (r.int("the input size"), r.int("the input size"))
    net.versions[0] = version
    net.params[0] = _read_details(r, op, "layer 0 (con)")
    net.flags[0] = tuple(r.bool(f"layer 0's {flag} flag") for flag in ("setup", "stale", "disabled"))
    for t in ("x_grad", "cached output", "final gradient"):
        r.tensor(f"layer 0's {t}")
    if version == 3:
        net.expansion = r.int("layer 0's sample expansion factor")


def read_dlib_net(path: str | os.PathLike, ops: list[Op] | None = None) -> DlibNet:
    """Read dlib network `path` of architecture `ops` (default: dlib's face ResNet, `anet_ops()`).

    Raises `DlibFormatError` (a ValueError) naming the file for a truncated, corrupted or foreign file, and
    FileNotFoundError for a missing one. Nothing in the file is executed; sizes are checked before reading."""
    path = Path(path)
    data = path.read_bytes()
    return parse_dlib_net(data, ops, name=str(path))


def parse_dlib_net(data: bytes, ops: list[Op] | None = None, name: str = "<bytes>") -> DlibNet:
    """`read_dlib_net` of bytes (`name` names them in errors)."""
    ops = list(anet_ops() if ops is None else ops)
    if not ops or ops[0].kind != "con":
        raise ValueError("an architecture starts with a convolution on the input")
    r, net = _Reader(bytes(data), name), DlibNet(ops=ops)
    _read_loss(r, net)
    versions = net.versions
    for i in range(len(ops) - 1, 0, -1):  # outermost first
        kind = ops[i].kind
        versions[i] = r.expect((1,) if kind in ("tag", "skip") else (1, 2), f"layer {i} ({kind})")
    _read_input_layer(r, net, ops[0])
    for i in range(1, len(ops)):  # then each layer's own fields, input to output
        op = ops[i]
        if op.kind in ("tag", "skip"):
            continue
        where = f"layer {i} ({op.kind})"
        arrays = _read_details(r, op, where)
        if arrays is not None:
            net.params[i] = arrays
        net.flags[i] = tuple(r.bool(f"{where}'s {flag} flag") for flag in ("setup", "stale", "disabled"))
        for t in ("x_grad", "cached output") + (("parameter gradient",) if versions[i] == 2 else ()):
            r.tensor(f"{where}'s {t}")
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} bytes after the network")
    _check_shapes(net, name)
    return net


def _check_shapes(net: DlibNet, name: str) -> None:
    """Each layer's input channels are the previous layer's outputs (as the network computes them)."""
    channels, tags = 3, {}
    for i, op in enumerate(net.ops):
        p = net.params.get(i)
        if op.kind == "con":
            if p["weight"].shape[1] != channels:
                raise DlibFormatError(f"{name}: layer {i} (con) takes {p['weight'].shape[1]} channels, gets {channels}")
            channels = op.args[0]
        elif op.kind == "affine" and p["gamma"].size != channels:
            raise DlibFormatError(f"{name}: layer {i} (affine) has {p['gamma'].size} channels, gets {channels}")
        elif op.kind == "fc" and p["weight"].shape[0] != channels:
            raise DlibFormatError(f"{name}: layer {i} (fc) takes {p['weight'].shape[0]} inputs, gets {channels}")
        elif op.kind == "tag":
            tags[op.args[0]] = channels
        elif op.kind == "skip":
            channels = tags[op.args[0]]
        elif op.kind == "add_prev":
            channels = max(channels, tags[op.args[0]])


# ------------------------------------------------------------------------------------------------ writing


class _Writer:
    def __init__(self) -> None:
        self.out = io.BytesIO()

    def int(self, v: int) -> None:
        mag = abs(int(v))
        body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
        self.out.write(bytes([len(body) | (0x80 if v < 0 else 0)]) + body)

    def float(self, v: float, digits: int = 53) -> None:
        """dlib's float_details: `digits` 24 for a C++ float, 53 for a double."""
        if math.isnan(v) or math.isinf(v):
            self.int(0), self.int(32002 if math.isnan(v) else (32000 if v > 0 else 32001))
            return
        m, e = math.frexp(v)
        mantissa, exponent = int(m * (1 << digits)), e - digits
        for _ in range(8):  # dlib drops up to 8 zero low bytes
            if mantissa & 0xFF:
                break
            mantissa, exponent = mantissa >> 8, exponent + 8
        self.int(mantissa), self.int(exponent)

    def string(self, s: str) -> None:
        self.int(len(s)), self.out.write(s.encode("latin-1"))

    def bool(self, b: bool) -> None:
        self.out.write(b"1" if b else b"0")

    def shape(self, version: int, dims) -> None:
        self.int(version)
        for d in dims:
            self.int(d)

    def tensor(self, a: np.ndarray | None, dims=None) -> None:
        a = np.zeros((0, 0, 0, 0), np.float32) if a is None else np.asarray(a, dtype="<f4")
        self.shape(2, dims if dims is not None else a.shape)
        self.out.write(a.tobytes())

    def multipliers(self) -> None:
        for v in (1.0, 1.0, 1.0, 0.0):  # learning rate, weight decay, bias learning rate, bias weight decay
            self.float(v)


def _write_details(w: _Writer, op: Op, p: dict | None) -> None:
    """A layer's fields in the versions dlib's face ResNet file uses (con_4, affine_, fc_2, relu_)."""
    if op.kind == "con":
        weight, bias = p["weight"], p["bias"]
        w.string("con_4")
        w.tensor(np.concatenate([weight.reshape(-1), bias.reshape(-1)]), (weight.size + bias.size, 1, 1, 1))
        for v in op.args:
            w.int(v)
        w.shape(1, weight.shape), w.shape(1, (1, weight.shape[0], 1, 1)), w.multipliers()
    elif op.kind == "affine":
        k = p["gamma"].size
        w.string("affine_")
        w.tensor(np.concatenate([p["gamma"].reshape(-1), p["beta"].reshape(-1)]), (2 * k, 1, 1, 1))
        w.shape(1, (1, k, 1, 1)), w.shape(1, (1, k, 1, 1)), w.int(0)
    elif op.kind == "fc":
        n_in, n_out = p["weight"].shape
        w.string("fc_2"), w.int(n_out), w.int(n_in)
        w.tensor(p["weight"], (n_in, n_out, 1, 1))
        w.shape(1, (n_in, n_out, 1, 1)), w.shape(1, (0, 0, 0, 0)), w.int(1), w.multipliers()
    elif op.kind in ("max_pool", "avg_pool"):
        w.string(f"{op.kind}_2")
        for v in op.args:
            w.int(v)
    else:
        w.string({"relu": "relu_", "add_prev": "add_prev_"}[op.kind])


def _flags(ops: list[Op], i: int) -> tuple[bool, bool, bool]:
    """The flags dlib writes for a trained layer: set up, gradient stale, and its output disabled when an
    in-place ReLU sits on it (dlib refuses to load a network whose flags say otherwise)."""
    return True, True, i + 1 < len(ops) and ops[i + 1].kind == "relu"


def write_dlib_net(path: str | os.PathLike | None, net: DlibNet, layer_version: int = 2) -> bytes:
    """Write `net` in dlib's format (what `read_dlib_net` reads and dlib loads); returns the bytes, and writes
    them atomically to `path` unless it is None. A network read from a file keeps how each layer was stored
    (a file read and written again is the same bytes); otherwise add_layer version `layer_version` (1 or 2; 2
    also stores an empty parameter gradient per layer) and dlib's flags (`_flags`)."""
    w, ops = _Writer(), net.ops
    w.int(1), w.string(net.loss)
    if net.loss == "loss_metric_2":
        w.float(net.margin, 24), w.float(net.dist_thresh, 24)
    for i in range(len(ops) - 1, 0, -1):
        w.int(1 if ops[i].kind in ("tag", "skip") else net.versions.get(i, layer_version))
    version = net.versions.get(0, 3)
    w.int(version), w.string("input_rgb_image_sized")
    for m in net.mean_rgb:
        w.float(float(np.float32(m)), 24)
    w.int(net.input_size[0]), w.int(net.input_size[1])
    for i, op in enumerate(ops):
        if op.kind in ("tag", "skip"):
            continue
        _write_details(w, op, net.params.get(i))
        for flag in net.flags.get(i, _flags(ops, i)):
            w.bool(flag)
        w.tensor(None), w.tensor(None)
        if i == 0 or net.versions.get(i, layer_version) == 2:
            w.tensor(None)  # the input layer's final gradient, another layer's parameter gradient
        if i == 0 and version == 3:
            w.int(net.expansion)
    data = w.out.getvalue()
    if path is not None:
        from explainface.files import atomic_write_bytes

        atomic_write_bytes(Path(path), data)
    return data
