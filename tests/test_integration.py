"""The core's pieces composed as a user would: network + identity head + ECLoss + auto beta."""

import math

import torch
import torch.nn.functional as F

from explainface.losses import ECLoss, make_beta
from explainface.losses.beta import total_loss
from explainface.models import FeatureCapture, create_head, create_model


def test_a_few_sgd_steps_fit_a_batch_and_move_beta():
    torch.manual_seed(0)
    model = create_model("vgg13_bn", width=0.125, input_size=112)
    head = create_head("cosface", model.embedding_dim, 4, s=16.0)
    reg, beta = ECLoss(), make_beta("auto")
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.03, momentum=0.9)
    x, y = torch.randn(8, 3, 112, 112), torch.arange(8) % 4
    id_losses, betas = [], []
    for _ in range(8):
        emb, maps = model.forward_with_features(x)
        id_loss = F.cross_entropy(head(emb, y), y)
        ec = reg(maps)
        loss = total_loss(id_loss, ec, beta, features=maps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        id_losses.append(float(id_loss))
        betas.append(beta.value)
        assert math.isfinite(float(loss)) and -math.log(400) <= float(ec) <= 0
    assert id_losses[-1] < id_losses[0]
    assert betas[0] != 1e-5 and all(1e-8 <= b <= 1e2 for b in betas)


def test_ecloss_trains_any_model_through_a_captured_layer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 6, 3, padding=1), torch.nn.ReLU()
    )
    x = torch.randn(2, 3, 10, 10)
    reg = ECLoss(normalize="max", temperature=1.0)
    with FeatureCapture(net, "3") as cap:
        net(x)
        loss = reg(cap.output)
    loss.backward()
    assert net[0].weight.grad is not None and float(net[0].weight.grad.abs().sum()) > 0
    assert not net[3]._forward_hooks
