"""xCos (explainface.models.xcos, explainface.losses.xcos): the score is the attention-weighted sum of the patch
cosines (vs float64 loops), bounded in [-1, 1], rebuilt by name; the loss pairs a batch deterministically, keeps
its frozen reference out of the module tree, and a few SGD steps lower it."""

from __future__ import annotations

import pytest
import torch
from tests.checkpoints import tiny_checkpoint
from tests.reference_xcos import naive_max_pool2, naive_patch_cosine, naive_xcos

import explainface.losses.xcos  # noqa: F401  (registers "xcos")
from explainface.losses import StepContext, create_regularizer
from explainface.losses.xcos import XCosLoss, select_pairs
from explainface.models import create_model
from explainface.models.pair_heads import create_pair_head, list_pair_heads
from explainface.models.xcos import XCosHead


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny convolutions: one thread is ~10x faster than several on a busy machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _randomized(head: XCosHead, seed: int = 0, scale: float = 1.0) -> XCosHead:
    """`head` with random weights, PReLU slopes and BatchNorm statistics (not the defaults), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in head.named_parameters():
            if "weight" in name and p.dim() == 4:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale / p[0].numel() ** 0.5)
            else:
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) * 0.5 + 0.25)
        for m in head.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=m.running_mean.dtype) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=m.running_var.dtype) + 0.5)
    return head.eval()


def _grids(n=3, d=6, h=7, w=7, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, h, w, generator=g, dtype=dtype), torch.randn(n, d, h, w, generator=g, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_score_is_the_attention_weighted_sum_of_the_patch_cosines(dtype):
    head = _randomized(XCosHead(in_channels=5, channels=6)).to(dtype)
    fa, fb = _grids(dtype=dtype)
    fb[0, :, 2, 3] = 0.0  # a zero cell: cosine 0, not NaN
    parts = head.explain(fa, fb)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    cos = naive_patch_cosine(fa, fb)
    assert parts["cosine"].dtype == dtype and parts["cosine"].shape == (3, 7, 7)
    torch.testing.assert_close(parts["cosine"].double(), cos, **tol)
    assert float(parts["cosine"][0, 2, 3]) == 0.0
    torch.testing.assert_close(head.score(fa, fb).double(), naive_xcos(cos, parts["attention"].double()), **tol)


def test_attention_is_a_distribution_over_the_cells_that_depends_on_the_pair():
    head = _randomized(XCosHead(in_channels=5, channels=6), scale=3.0).double()
    fa, fb = _grids(n=4)
    att = head.attention(fa, fb)
    assert att.shape == (4, 7, 7) and bool((att > 0).all())
    torch.testing.assert_close(att.sum((1, 2)), torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-12)
    assert float((att[0] - att[1]).abs().max()) > 1e-3  # not a constant map
    assert float((att - 1 / 49).abs().max()) > 1e-3  # not uniform


def test_xcos_lies_in_minus_one_to_one_also_for_extreme_inputs():
    head = _randomized(XCosHead(in_channels=5, channels=6), scale=30.0)  # very peaked attention
    for dtype in (torch.float32, torch.float64):
        h = head.to(dtype)
        fa, fb = _grids(n=4, dtype=dtype)
        for sa, sb in [(1e30, 1e30), (1e-30, 1e-30), (1e30, 1e-30), (1.0, 0.0), (0.0, 0.0)]:
            s = h.score(fa * sa, fb * sb)
            assert bool(torch.isfinite(s).all()) and bool((s.abs() <= 1).all()), (dtype, sa, sb, s)
        for scale in (1e-30, 1.0, 1e30):
            f = fa * scale
            torch.testing.assert_close(h.score(f, f), torch.ones(4, dtype=dtype), rtol=0, atol=1e-6)  # reached
            torch.testing.assert_close(h.score(f, -f), -torch.ones(4, dtype=dtype), rtol=0, atol=1e-6)


def test_identical_faces_score_one_with_patch_cosines_one():
    head = _randomized(XCosHead(in_channels=5, channels=8))
    maps = torch.relu(torch.randn(2, 5, 14, 14, dtype=torch.float64))
    f = head.double().features(maps)
    parts = head.explain(f, f)
    torch.testing.assert_close(parts["cosine"], torch.ones(2, 7, 7, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(head.score(f, f), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    other = head.features(torch.relu(torch.randn(2, 5, 14, 14, dtype=torch.float64)))
    assert float(head.score(f, other).max()) < 0.999


def test_a_head_rebuilt_by_name_from_its_options_gives_identical_scores():
    head = _randomized(XCosHead(in_channels=5, channels=6, grid="target"), seed=3)
    assert "xcos" in list_pair_heads()
    assert head.options() == {"in_channels": 5, "channels": 6, "grid": "target"}
    rebuilt = create_pair_head("xcos", **head.options())
    maps_a, maps_b = torch.rand(3, 5, 14, 14), torch.rand(3, 5, 14, 14)
    assert not torch.equal(rebuilt.eval()(maps_a, maps_b), head(maps_a, maps_b))  # fresh weights differ
    rebuilt.load_state_dict(head.state_dict())
    assert torch.equal(rebuilt.eval()(maps_a, maps_b), head(maps_a, maps_b))


def test_features_pool_the_maps_2x2_to_7x7_and_commute_with_a_horizontal_flip():
    pooled = _randomized(XCosHead(in_channels=4, channels=6, grid="pool")).double()
    as_is = XCosHead(in_channels=4, channels=6, grid="target").double().eval()
    as_is.load_state_dict(pooled.state_dict())
    maps = torch.relu(torch.randn(2, 4, 14, 14, dtype=torch.float64))
    f = pooled.features(maps)
    assert f.shape == (2, 6, 7, 7)
    torch.testing.assert_close(f, as_is.features(naive_max_pool2(maps)), rtol=1e-12, atol=1e-12)
    assert as_is.features(maps).shape == (2, 6, 14, 14)
    # mirrored maps -> mirrored features, exactly (so the flip-sum of pair_heads is well defined)
    torch.testing.assert_close(pooled.features(maps.flip(-1)).flip(-1), f, rtol=1e-12, atol=1e-12)


def test_scores_of_a_batch_of_pairs_equal_the_scores_of_each_pair_alone():
    head = _randomized(XCosHead(in_channels=5, channels=6))
    fa, fb = _grids(n=4, dtype=torch.float32)
    batched = head.score(fa, fb)
    alone = torch.cat([head.score(fa[i : i + 1], fb[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, alone, rtol=1e-6, atol=1e-6)
    assert float(batched.std()) > 1e-4


def test_gradients_reach_the_features_and_every_head_parameter_and_are_finite():
    head = XCosHead(in_channels=5, channels=6).train()
    maps = torch.relu(torch.randn(4, 5, 14, 14)).requires_grad_(True)
    with torch.no_grad():
        maps[0, :, :2, :2] = 0.0  # an all-zero pooled cell
    f = head.features(maps)
    head.score(f[:2], f[2:]).sum().backward()
    assert maps.grad is not None and bool(torch.isfinite(maps.grad).all()) and float(maps.grad.abs().sum()) > 0
    for name, p in head.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name


def test_bad_options_are_clear_value_errors():
    with pytest.raises(ValueError, match="unknown grid 'cells'"):
        XCosHead(in_channels=8, grid="cells")
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        XCosHead(in_channels=8, channels=0)
    with pytest.raises(ValueError, match="has no option"):
        create_pair_head("xcos", in_channels=8, chanels=4)
    with pytest.raises(ValueError, match="unknown grid"):
        XCosLoss(reference=None, grid="cells")
    with pytest.raises(ValueError, match="unknown grid"):
        create_regularizer("xcos", reference=None, grid="cells")
    with pytest.raises(ValueError, match="pairs must be a positive integer"):
        XCosLoss(reference=None, pairs=0)
    with pytest.raises(ValueError, match="needs option.*reference"):
        create_regularizer("xcos")
    with pytest.raises(ValueError, match="built for 8 channels"):
        XCosHead(in_channels=8).features(torch.zeros(1, 4, 14, 14))
    with pytest.raises(ValueError, match="one shape"):
        XCosHead(in_channels=8, channels=4).score(torch.zeros(2, 4, 7, 7), torch.zeros(2, 4, 7, 6))


def _pairs(a, b):
    return {tuple(sorted(p)) for p in zip(a.tolist(), b.tolist())}


def test_select_pairs_takes_every_same_label_pair_then_random_others_reproducibly():
    labels = torch.tensor([0, 1, 0, 2, 3, 1, 4, 5, 6, 7, 0, 8])  # 3 + 1 same-label pairs, 62 others
    a, b = select_pairs(labels, 20, step=7)
    got = _pairs(a, b)
    assert len(a) == 20 and len(got) == 20 and bool((a != b).all())
    same = {(0, 2), (0, 10), (2, 10), (1, 5)}
    assert same <= got
    assert all(labels[i] != labels[j] for i, j in got - same)
    a2, b2 = select_pairs(labels, 20, step=7)
    assert torch.equal(a, a2) and torch.equal(b, b2)  # same step, same pairs (a resumed run is identical)
    a3, b3 = select_pairs(labels, 20, step=8)
    assert _pairs(a3, b3) != got and same <= _pairs(a3, b3)
    assert len(select_pairs(labels, 1000, step=0)[0]) == 66  # everything when it fits
    assert bool((a > b).any()) and bool((a < b).any())  # both orders occur


def test_select_pairs_keeps_half_the_budget_for_different_identities():
    labels = torch.tensor([0] * 10 + [1] * 10)  # 90 same-label pairs, 100 others
    a, b = select_pairs(labels, 40, step=0)
    same = int((labels[a] == labels[b]).sum())
    assert len(a) == 40 and len(_pairs(a, b)) == 40 and same == 20
    assert len(select_pairs(torch.zeros(1, dtype=torch.long), 8, step=0)[0]) == 0


def _backbone(seed=1):
    torch.manual_seed(seed)
    return create_model("vgg13", width=0.125, input_size=112, embedding_dim=32)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(2)
    base = torch.randn(4, 3, 112, 112, generator=g)
    return base[labels] + 0.5 * torch.randn(8, 3, 112, 112, generator=g), labels


def _ctx(model, images, labels, step=0):
    emb, maps = model.forward_with_features(images)
    return StepContext(images=images, labels=labels, maps=maps, embedding=emb, model=model, step=step)


def test_before_setup_loss_and_pair_heads_raise_a_clear_runtime_error():
    reg = XCosLoss(reference=None)
    with pytest.raises(RuntimeError, match="setup"):
        reg.pair_heads()
    model = _backbone()
    images, labels = _batch()
    with pytest.raises(RuntimeError, match="setup"):
        reg.loss(_ctx(model, images[:2], labels[:2]))


def _read_network(path: str):
    """The trainer's checkpoint reader (losses do not import training)."""
    from explainface.training.checkpoint import load_model_weights

    return load_model_weights(path)[0]


@pytest.mark.parametrize("training", [True, False])
def test_setup_builds_the_head_for_the_target_layer_and_keeps_the_reference_frozen_outside(tmp_path, training):
    ref_path = tiny_checkpoint(tmp_path / "ref.safetensors")
    model = _backbone().train(training)
    bn_before = {k: v.clone() for k, v in model.state_dict().items()}
    reg = XCosLoss(reference=str(ref_path), channels=16)
    reg.load_checkpoint = _read_network
    reg.setup(model)
    assert model.training is training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in bn_before.items())  # the dummy pass changed nothing
    assert reg.head.options() == {"in_channels": model.num_channels, "channels": 16, "grid": "pool"}
    assert reg.pair_heads() == {"xcos": reg.head}
    assert all(k.startswith("head.") for k in reg.state_dict())  # the reference is not saved ...
    assert {id(p) for p in reg.parameters()} == {id(p) for p in reg.head.parameters()}  # ... nor trained
    (ref,) = reg._reference
    reg.train()
    assert not ref.training and not any(p.requires_grad for p in ref.parameters())
    images, labels = _batch()
    ctx = _ctx(model, images, labels)
    reg.loss(ctx)
    emb = torch.nn.functional.normalize(ref(images), dim=1)
    assert reg.stats()["target_mean"] == pytest.approx(float((emb @ emb.T).triu(1).sum() / 28), rel=1e-5)
    assert reg.stats()["pairs"] == 28.0 and set(reg.stats()) == set(XCosLoss.STATS)


def test_a_reference_for_another_input_size_is_a_clear_error(tmp_path):
    ref_path = tiny_checkpoint(tmp_path / "ref224.safetensors", input_size=224)
    reg = XCosLoss(reference=str(ref_path))
    with pytest.raises(ValueError, match="needs a checkpoint reader"):
        reg.setup(_backbone())
    reg.load_checkpoint = _read_network
    with pytest.raises(ValueError, match="224px"):
        reg.setup(_backbone())


def test_reference_none_fits_the_backbones_own_detached_embedding():
    model = _backbone()
    reg = XCosLoss(reference=None)
    reg.setup(model)
    images, labels = _batch()
    ctx = _ctx(model, images, labels)
    loss = reg.loss(ctx)
    e = torch.nn.functional.normalize(ctx.embedding.detach(), dim=1)
    assert reg.stats()["target_mean"] == pytest.approx(float((e @ e.T).triu(1).sum() / 28), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in model.head.parameters())  # the target is detached: no path to the fc


def test_a_few_sgd_steps_on_the_head_and_backbone_lower_the_mse(tmp_path):
    ref_path = tiny_checkpoint(tmp_path / "ref.safetensors")
    model = _backbone()
    reg = XCosLoss(reference=str(ref_path), pairs=16)
    reg.load_checkpoint = _read_network
    reg.setup(model)
    (ref,) = reg._reference
    ref_before = {k: v.clone() for k, v in ref.state_dict().items()}
    images, labels = _batch()
    opt = torch.optim.SGD(list(model.parameters()) + list(reg.parameters()), lr=0.05, momentum=0.9)
    mses = []
    for _ in range(6):
        loss = reg.loss(_ctx(model, images, labels, step=3))
        mses.append(reg.stats()["mse"])
        assert float(loss) == pytest.approx(mses[-1])
        opt.zero_grad()
        loss.backward()
        assert float(sum(p.grad.abs().sum() for p in model.features.parameters())) > 0  # the backbone learns too
        opt.step()
    assert mses[-1] < 0.2 * mses[0], mses
    assert reg.stats()["pairs"] == 16.0
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in ref_before.items())  # the reference stays frozen
