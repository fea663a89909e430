"""ECLoss (docs/method.md §2) against the float64 broadcasting reference, plus numerics and memory."""

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from explainface.losses import ECLoss, build_templates, ecloss, mutual_information

from reference import naive_marginal_mi, naive_mi, naive_templates


def _maps(shape, scale=1.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(shape, generator=g, dtype=torch.float64)) * scale
    return x.to(dtype).requires_grad_()


def _value_and_grad(fn, x):
    x = x.detach().clone().requires_grad_()
    v = fn(x)
    (g,) = torch.autograd.grad(v, x)
    return v.detach(), g


def _assert_rel(a, b, rtol):
    scale = max(float(b.abs().max()), 1e-30)
    assert float((a - b).abs().max()) <= rtol * scale, (float((a - b).abs().max()), scale)


@pytest.mark.parametrize(
    "shape,k,tau,scale,chunk_bytes",
    [
        ((2, 3, 14, 14), 400, 0.001, 500.0, None),  # paper values, single chunk
        ((2, 3, 14, 14), 400, 0.05, 20.0, 20_000),  # forced chunking
        ((3, 4, 6, 6), "full", 0.3, 3.0, None),  # full set, single chunk
        ((3, 4, 6, 6), "full", 0.3, 3.0, 5_000),  # full set, many chunks
        ((2, 2, 5, 7), "full", 1.0, 1.0, 7_000),  # non-square
        ((2, 5, 6, 6), 20, 0.5, 2.0, None),  # K smaller than HW + 1
        ((2, 5, 6, 6), 100, 0.5, 2.0, 3_000),  # K larger than HW + 1
    ],
)
def test_fast_ecloss_matches_float64_reference_in_value_and_gradient(shape, k, tau, scale, chunk_bytes):
    x = _maps(shape, scale)
    h, w = shape[2:]
    ref_t = naive_templates(h, w, k, tau=tau)
    kw = {} if chunk_bytes is None else {"max_chunk_bytes": chunk_bytes}
    v_fast, g_fast = _value_and_grad(lambda m: mutual_information(m, k=k, tau=tau, **kw), x)
    v_ref, g_ref = _value_and_grad(lambda m: naive_mi(m, ref_t), x)
    _assert_rel(v_fast, v_ref, 1e-6)
    _assert_rel(g_fast, g_ref, 1e-6)


def test_ecloss_is_minus_mi_and_lies_in_minus_log_k_to_zero():
    x = _maps((4, 8, 14, 14), 200.0)
    loss = ecloss(x.detach())
    assert float(loss) == pytest.approx(-float(mutual_information(x.detach())))
    assert -math.log(400) <= float(loss) <= 0.0


@pytest.mark.parametrize("chunk_bytes", [None, 2_000])
def test_gradcheck_on_small_maps(chunk_bytes):
    x = _maps((2, 2, 3, 3), 2.0)
    kw = {} if chunk_bytes is None else {"max_chunk_bytes": chunk_bytes}
    assert torch.autograd.gradcheck(lambda m: ecloss(m, k="full", tau=0.7, **kw), (x,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("normalize", ["max", "l2"])
def test_gradcheck_normalized_modes(normalize):
    x = (_maps((2, 2, 3, 4), 2.0) + 0.1).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda m: ecloss(m, k="full", normalize=normalize), (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("chunk_bytes", [None, 3_000])
def test_marginal_channels_matches_reference_and_gradcheck(chunk_bytes):
    x = _maps((2, 3, 4, 4), 4.0)
    kw = {} if chunk_bytes is None else {"max_chunk_bytes": chunk_bytes}
    t = naive_templates(4, 4, "full", tau=0.5)
    v_fast, g_fast = _value_and_grad(lambda m: mutual_information(m, k="full", tau=0.5, marginal="channels", **kw), x)
    v_ref, g_ref = _value_and_grad(lambda m: naive_marginal_mi(m, t), x)
    _assert_rel(v_fast, v_ref, 1e-6)
    _assert_rel(g_fast, g_ref, 1e-6)
    assert torch.autograd.gradcheck(
        lambda m: ecloss(m, k="full", tau=0.5, marginal="channels", **kw), (x,), eps=1e-6, atol=1e-8
    )


def test_marginal_rewards_channels_for_choosing_different_templates():
    t = build_templates(6, 6, k="full", tau=1.0).double()
    same = (20 * t[5].clamp_min(0)).expand(1, 4, 6, 6).clone()
    diff = torch.stack([20 * t[i].clamp_min(0) for i in (3, 12, 25, 33)])[None]
    # uniform prior: both are confident, similar MI; channel marginal: only `diff` scores
    assert float(mutual_information(same, k="full", tau=1.0, marginal="channels")) < 0.05
    assert float(mutual_information(diff, k="full", tau=1.0, marginal="channels")) > 1.0


def test_all_zero_maps_give_zero_loss_and_zero_finite_gradient():
    x = torch.zeros(2, 4, 14, 14, requires_grad=True)
    for kw in ({}, {"k": "full"}, {"normalize": "max"}, {"normalize": "l2"}, {"marginal": "channels"}):
        loss = ecloss(x, **kw)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == pytest.approx(0.0, abs=1e-5), kw  # float32 rounding of log K ~ 9.9
        assert torch.isfinite(g).all() and float(g.abs().max()) < 1e-8, kw  # exactly 0 up to rounding


@pytest.mark.parametrize("k", [400, "full"])
def test_no_overflow_for_tau_10_and_activations_up_to_1e3(k):
    x32 = _maps((2, 8, 14, 14), 1.0, dtype=torch.float32)
    x32 = (x32 / x32.max() * 1e3).detach().requires_grad_()
    loss = ecloss(x32, k=k, tau=10.0, max_chunk_bytes=200_000)
    (g,) = torch.autograd.grad(loss, x32)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    assert -math.log(build_templates(14, 14, k=k).shape[0]) - 1e-4 <= loss.item() <= 1e-4
    ref = ecloss(x32.detach().double(), k=k, tau=10.0)
    assert loss.item() == pytest.approx(float(ref), abs=1e-3)


def test_large_activations_saturate_to_a_confident_match():
    t = build_templates(14, 14, k=400, tau=0.001)
    x = (t[37].clamp_min(0) * 1e7).reshape(1, 1, 14, 14)  # a map shaped like template 37
    mi = mutual_information(x)
    assert float(mi) == pytest.approx(math.log(400), rel=1e-3)


def test_computed_in_float32_even_under_autocast():
    x = _maps((2, 4, 14, 14), 300.0, dtype=torch.float32)
    plain = ecloss(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = ecloss(x)
    assert auto.dtype == torch.float32
    assert float(auto) == pytest.approx(float(plain), rel=1e-6)
    bf = ecloss(x.detach().to(torch.bfloat16))
    assert bf.dtype == torch.float32


def test_normalized_loss_does_not_depend_on_activation_magnitude():
    x = _maps((2, 4, 14, 14), 1.0)
    for mode in ("max", "l2"):
        a = ecloss(x, normalize=mode)
        b = ecloss(x * 37.0, normalize=mode)
        assert float(a) == pytest.approx(float(b), rel=1e-5)
        assert float(a) < -1e-3  # not flat, unlike paper mode at this scale
    assert abs(float(ecloss(x))) < 1e-3  # paper mode is nearly flat at activations ~1 (docs/method.md §2.5)


def _blob_count(m: torch.Tensor, frac: float = 0.7) -> int:
    """Connected regions (8-connected) of the map above `frac` of its max."""
    from scipy import ndimage

    _, n = ndimage.label((m > frac * m.max()).numpy(), structure=[[1, 1, 1]] * 3)
    return n


def test_descending_ecloss_turns_noise_into_maps_with_at_most_two_blobs():
    torch.manual_seed(0)
    x = torch.rand(1, 6, 8, 8).requires_grad_()
    before = [_blob_count(m) for m in x.detach()[0]]
    opt = torch.optim.SGD([x], lr=2.0)
    losses = []
    for _ in range(100):
        loss = ecloss(torch.relu(x), k="full", normalize="max", temperature=1.0)
        losses.append(float(loss))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = [_blob_count(m) for m in torch.relu(x).detach()[0]]
    assert losses[-1] < losses[0] - 1.0
    assert max(before) > 2 and max(after) <= 2, (before, after)


def test_module_matches_function_and_keeps_templates_out_of_state_dict():
    x = _maps((2, 3, 14, 14), 100.0, dtype=torch.float32)
    mod = ECLoss(k=400)
    assert float(mod(x)) == pytest.approx(float(ecloss(x, k=400)), rel=1e-6)
    assert mod.templates.shape == (400, 14, 14)
    assert "templates" not in mod.state_dict()
    assert mod.last_mi is not None and float(mod.last_mi) == pytest.approx(-float(mod(x)))
    y = _maps((2, 3, 7, 9), 100.0, dtype=torch.float32)
    mod(y)
    assert mod.templates.shape == (400, 7, 9)  # rebuilt for the new size
    mod.double()
    assert mod.templates.dtype == torch.float64  # buffer follows the module
    mod.half()
    assert float(mod(y.detach())) == pytest.approx(float(ecloss(y.detach(), k=400)), rel=1e-6)
    assert mod.templates.dtype == torch.float32  # never computed from rounded half templates


def test_module_rejects_maps_that_are_not_4d():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*\(2, 14, 14\)"):
        ECLoss()(torch.zeros(2, 14, 14))
    with pytest.raises(ValueError, match="normalize"):
        ECLoss(normalize="softmax")


@pytest.mark.slow
def test_full_set_at_14x14_with_4096_maps_stays_under_1_gib_peak():
    code = textwrap.dedent(
        """
        import torch
        from explainface.losses import ecloss
        from explainface.memory import peak_memory
        torch.manual_seed(0)
        x = torch.relu(torch.randn(64, 64, 14, 14)).mul_(50).requires_grad_()
        ecloss(x[:1], k="full")  # build and cache the templates outside the measurement
        with peak_memory() as m:
            loss = ecloss(x, k="full")
            loss.backward()
        assert torch.isfinite(x.grad).all()
        print(m.peak_bytes, int(m.exact))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    peak, exact = map(int, out.stdout.split())
    assert exact == 1
    assert 0 < peak < 2**30, f"peak {peak / 2**20:.0f} MiB"


def test_loop_reference_used_by_the_benchmark_agrees_with_the_broadcasting_reference():
    from reference import naive_mi_loop

    x = _maps((2, 3, 5, 5), 3.0)
    t = naive_templates(5, 5, 60, tau=0.4)
    assert float(naive_mi_loop(x, t)) == pytest.approx(float(naive_mi(x, t)), rel=1e-10)


def test_paper_mode_scale_matches_the_figures_measured_in_spec():
    # docs/method.md §2.5: random ReLU maps, full set, tau = 0.001: MI ~ 6.6e-5 nats of log K = 9.87
    # at activations of order 1, and ~0.13 at order 50.
    torch.manual_seed(0)
    x = torch.relu(torch.randn(16, 64, 14, 14, dtype=torch.float64))
    assert 5e-5 < float(mutual_information(x, k="full")) < 8e-5
    assert 0.10 < float(mutual_information(50 * x, k="full")) < 0.16
