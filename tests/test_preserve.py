"""The embedding-preservation term (`preserve`): value and gradient against a float64 reference, a frozen reference
taken at set-up that is never trained, saved or put in train mode, and a resumed run that still compares with the
original network (not with the fine-tuned one of the checkpoint)."""

from __future__ import annotations

import pytest
import torch

from explainface.losses import StepContext, create_regularizer
from explainface.losses.preserve import preservation_loss
from explainface.models import create_model
from reference_preserve import naive_preservation

TINY_NET = {"width": 0.125, "input_size": 56, "embedding_dim": 16}


def _net(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return create_model("iresnet18", **{**TINY_NET, **kw})


def _ctx(model, images):
    emb, maps = model.forward_with_features(images)
    return StepContext(images=images, labels=torch.zeros(len(images), dtype=torch.long), maps=maps, embedding=emb,
                       model=model)  # fmt: skip


@pytest.mark.parametrize("form", ["cosine", "mse"])
def test_value_and_gradient_match_the_float64_reference(form):
    g = torch.Generator().manual_seed(3)
    e = torch.randn(5, 7, dtype=torch.float64, generator=g, requires_grad=True)
    e0 = torch.randn(5, 7, dtype=torch.float64, generator=g)
    e_ref = e.detach().clone().requires_grad_(True)
    got, want = preservation_loss(e, e0, form), naive_preservation(e_ref, e0, form)
    assert got.dtype == torch.float64 and torch.allclose(got, want, rtol=1e-12, atol=1e-14)
    got.backward()
    want.backward()
    assert torch.allclose(e.grad, e_ref.grad, rtol=1e-10, atol=1e-14)
    assert torch.autograd.gradcheck(lambda x: preservation_loss(x, e0, form), (e.detach().clone().requires_grad_(),))
    # the cosine form is scale-free and 0 at the reference; unit embeddings' squared distance is 2 (1 - cos)
    assert float(preservation_loss(3.0 * e0, e0)) == pytest.approx(0.0, abs=1e-12)
    u, u0 = torch.nn.functional.normalize(e.detach(), dim=1), torch.nn.functional.normalize(e0, dim=1)
    assert float((u - u0).pow(2).sum(1).mean()) == pytest.approx(2 * float(preservation_loss(e.detach(), e0)))


def test_the_reference_is_a_frozen_copy_of_the_network_at_setup_never_trained_nor_saved():
    model = _net().double()
    reg = create_regularizer("preserve")
    reg.setup(model)
    ref = reg.reference
    assert ref is not model and not ref.training and not any(p.requires_grad for p in ref.parameters())
    assert list(reg.parameters()) == [] and reg.state_dict() == {}  # nothing to train, nothing in a checkpoint
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    x = torch.randn(4, 3, 56, 56, dtype=torch.float64)
    model.eval()  # BatchNorm statistics frozen, as the retrofit trains: the term starts at 0
    loss = reg.loss(_ctx(model, x))
    assert float(loss) == pytest.approx(0.0, abs=1e-12) and reg.stats()["cos_min"] == pytest.approx(1.0)
    with torch.no_grad():  # the network moves on; its reference does not
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    loss = reg.loss(_ctx(model, x))
    loss.backward()
    assert float(loss) > 1e-4 and all(p.grad is None for p in ref.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in ref.state_dict().items())
    # the value is the float64 reference's, on the two networks' embeddings
    with torch.no_grad():
        want = naive_preservation(model(x), ref(x))
    assert float(loss) == pytest.approx(float(want), rel=1e-9)


def test_identity_layers_make_the_reference_the_network_its_authors_ran():
    model = _net()  # our iresnet: a ReLU (act3) after layer3, which insightface's network does not have
    theirs = _net(target_act="none")
    theirs.load_state_dict(model.state_dict())
    reg = create_regularizer("preserve", identity_layers=["act3"])
    reg.setup(model)
    x = torch.randn(3, 3, 56, 56)
    with torch.no_grad():
        assert torch.allclose(reg.reference(x.clone()), theirs.eval()(x), atol=1e-6)
        assert not torch.allclose(reg.reference(x), model.eval()(x), atol=1e-3)
    with pytest.raises(ValueError, match="preserve: identity layer 'layer3.0.bn1' .* has weights"):
        create_regularizer("preserve", identity_layers=["layer3.0.bn1"]).setup(model)
    with pytest.raises(ValueError, match="form must be one of cosine, mse"):
        create_regularizer("preserve", form="l1")


def _config(tmp_path, weights, steps, extra=()):
    from explainface.training.config import load_config

    return load_config(None, [
        "model.name=iresnet18", "model.width=0.125", "model.input_size=56", "model.embedding_dim=16",
        f"model.weights={weights}", "head.name=none", "data.identities=4", "data.per_identity=4", "data.workers=0",
        "optim.batch_size=4", f"optim.max_steps={steps}", "optim.warmup_steps=1", "optim.freeze_bn=true",
        "optim.lr=0.01", "run.checkpoint_every=2", "run.threads=1", "run.deterministic=true",
        "regularizers=[{name: ecloss_fit, beta: 1.0, diversity: 0.5}, {name: preserve, beta: 10.0}]", *extra,
    ])  # fmt: skip


def test_a_resumed_run_compares_with_the_original_network_not_the_checkpoint(tmp_path):
    from explainface.training.checkpoint import load_checkpoint
    from explainface.training.trainer import Trainer

    original = _net(seed=5)
    torch.save(original.state_dict(), tmp_path / "backbone.pth")
    out = tmp_path / "run"
    first = Trainer(_config(tmp_path, tmp_path / "backbone.pth", 4), out, progress=False)
    first.train()
    tensors, state = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert state["step"] == 4 and not [k for k in tensors if k.startswith(("reg.", "head."))]
    tuned = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    moved = [k for k, v in original.state_dict().items() if v.is_floating_point() and not torch.equal(v, tuned[k])]
    assert moved  # the network was fine-tuned ...
    resumed = Trainer(_config(tmp_path, tmp_path / "backbone.pth", 6), out, progress=False)
    assert resumed.step == 4
    ref = resumed.regs[1].reference.state_dict()  # ... and the resumed run's reference is still the original
    assert all(torch.equal(ref[k], v) for k, v in original.state_dict().items())
    assert all(torch.equal(resumed.module.model.state_dict()[k].cpu(), v) for k, v in tuned.items())
    # BatchNorm statistics stay the pretrained network's (optim.freeze_bn), in the checkpoint too
    assert all(torch.equal(tuned[k], v) for k, v in original.state_dict().items() if "running_" in k)
