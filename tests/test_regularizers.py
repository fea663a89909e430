"""Regularisers are registered names: created by name with checked options, configured as a list with one beta
each, given a step context, and logged by their own stats, with no regulariser-specific code in the trainer."""

from __future__ import annotations

import pytest
import torch

from explainface.losses import (
    ECLoss,
    MapRegularizer,
    Regularizer,
    StepContext,
    create_regularizer,
    list_regularizers,
    register_regularizer,
)
from explainface.training.config import config_from_dict, load_config

TINY = [
    "model.name=vgg13_bn", "model.width=0.0625", "model.input_size=56", "data.identities=8", "data.per_identity=4",
    "data.workers=0", "optim.batch_size=8", "optim.warmup_steps=1", "optim.max_steps=3", "run.log_every=1",
    "run.deterministic=true", "run.checkpoint_every=1000",
]  # fmt: skip


@register_regularizer("test_map_l1")
class MapL1(MapRegularizer):
    """Mean activation, for the tests: a loss of the maps alone."""

    STATS = ("mean",)

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale, self.last = scale, float("nan")

    def compute(self, maps: torch.Tensor) -> torch.Tensor:
        loss = self.scale * maps.mean()
        self.last = float(loss.detach())
        return loss

    def stats(self) -> dict[str, float]:
        return {"mean": self.last}


@register_regularizer("test_embedding_norm")
class EmbeddingNorm(Regularizer):
    """Reads the embedding from the context, not the maps."""

    STATS = ("seen_batch",)

    def __init__(self) -> None:
        super().__init__()
        self.batch = 0

    def loss(self, ctx: StepContext) -> torch.Tensor:
        assert ctx.images.shape[0] == ctx.labels.shape[0] == ctx.embedding.shape[0] == ctx.maps.shape[0]
        assert isinstance(ctx.model, torch.nn.Module) and ctx.head is not None
        self.batch = ctx.images.shape[0]
        return ctx.embedding.square().mean()

    def stats(self) -> dict[str, float]:
        return {"seen_batch": float(self.batch)}


@register_regularizer("test_head_weights")
class HeadWeights(Regularizer):
    """A loss of the head's weights: its gradient never reaches the target maps."""

    def loss(self, ctx: StepContext) -> torch.Tensor:
        return sum(p.square().sum() for p in ctx.head.parameters())


def test_create_regularizer_by_name_with_checked_options():
    reg = create_regularizer("ecloss", normalize="max", temperature=0.2)
    assert isinstance(reg, ECLoss) and reg.normalize == "max" and reg.temperature == 0.2
    assert "ecloss" in list_regularizers()
    with pytest.raises(ValueError, match=r"no option\(s\) normalise; its options: k, tau"):
        create_regularizer("ecloss", normalise="max")
    with pytest.raises(ValueError, match="unknown regularizer 'eclos'; registered: .*ecloss"):
        create_regularizer("eclos")


def test_a_second_class_under_a_taken_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):

        @register_regularizer("ecloss")
        class Other(MapRegularizer):
            pass


def test_config_holds_several_regularizers_each_with_its_beta_and_checks_them():
    cfg = load_config(None, ["regularizers=[{name: ecloss, beta: auto}, {name: test_map_l1, scale: 2}]"])
    assert cfg.regularizers == [{"name": "ecloss", "beta": "auto"}, {"name": "test_map_l1", "beta": 1e-5, "scale": 2}]
    edited = load_config(None, ["regularizers=[{name: ecloss}]", "regularizers.0.beta=0.5"])
    assert edited.regularizers[0]["beta"] == 0.5
    with pytest.raises(ValueError, match=r"regularizers\[0\]: regularizer 'ecloss' has no option\(s\) tua"):
        load_config(None, ["regularizers=[{name: ecloss, tua: 1}]"])
    with pytest.raises(ValueError, match=r"regularizers\[0\]: beta must be"):
        load_config(None, ["regularizers=[{name: ecloss, beta: often}]"])


def test_the_old_single_regularizer_section_still_loads():
    old = config_from_dict({"regularizer": {"name": "ecloss", "k": 400, "tau": 0.001, "beta": "auto",
                                            "normalize": "none", "temperature": 0.1, "marginal": "uniform",
                                            "radius": None}})  # fmt: skip
    assert old.regularizers[0]["name"] == "ecloss" and old.regularizers[0]["beta"] == "auto"
    assert config_from_dict({"regularizer": {"name": "none", "beta": 1e-5}}).regularizers == []
    with pytest.raises(ValueError, match="not both"):
        config_from_dict({"regularizer": {"name": "ecloss"}, "regularizers": []})


def test_trainer_runs_any_registered_regularizers_and_logs_their_stats(tmp_path):
    from explainface.training.trainer import Trainer, read_metrics

    regs = "regularizers=[{name: test_map_l1, beta: auto, scale: 3}, {name: test_embedding_norm, beta: 0.01}, " \
           "{name: test_map_l1, beta: 0.1}]"  # fmt: skip
    cfg = load_config(None, [*TINY, regs])
    summary = Trainer(cfg, tmp_path / "run", progress=False).train()
    assert summary["steps"] == 3
    m = read_metrics(tmp_path / "run")
    for col in ("test_map_l1.loss", "test_map_l1.beta", "test_map_l1.mean", "test_embedding_norm.seen_batch",
                "test_map_l1_2.loss", "test_map_l1_2.beta"):  # fmt: skip
        assert col in m and len(m[col]) == 3, col
    assert (m["test_embedding_norm.seen_batch"] == 8).all()
    assert m["test_map_l1.mean"] == pytest.approx(m["test_map_l1.loss"])
    assert (m["test_embedding_norm.beta"] == 0.01).all() and m["test_map_l1.beta"][0] == 1e-5
    assert m["test_map_l1.beta"][-1] != 1e-5  # auto beta moved
    expected = (m["test_map_l1.beta"] * m["test_map_l1.loss"] + 0.01 * m["test_embedding_norm.loss"]
                + 0.1 * m["test_map_l1_2.loss"])  # fmt: skip
    assert m["reg_loss"] == pytest.approx(expected, rel=1e-5)


def test_auto_beta_for_a_regularizer_that_never_touches_the_maps_fails_with_its_name(tmp_path):
    from explainface.training.trainer import Trainer

    cfg = load_config(None, [*TINY, "regularizers=[{name: test_head_weights, beta: auto}]"])
    with pytest.raises(ValueError, match='test_head_weights: beta="auto".*constant beta'):
        Trainer(cfg, tmp_path / "run", progress=False).train()


def test_a_regularizer_with_start_is_off_before_it_and_those_steps_equal_the_plain_run(tmp_path):
    from explainface.training.trainer import Trainer, read_metrics

    steps = ["optim.max_steps=5"]
    Trainer(load_config(None, [*TINY, *steps]), tmp_path / "plain", progress=False).train()
    reg = "regularizers=[{name: test_map_l1, beta: 0.5, start: 3, scale: 100}]"
    Trainer(load_config(None, [*TINY, *steps, reg]), tmp_path / "late", progress=False).train()
    plain, late = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "late")
    assert (late["test_map_l1.loss"][:3] != late["test_map_l1.loss"][:3]).all()  # NaN: not computed yet
    assert (late["test_map_l1.loss"][3:] > 0).all() and (late["test_map_l1.beta"][3:] == 0.5).all()
    # the 4th step is the first with the term: its identity loss is still the plain run's, the 5th's is not
    assert late["id_loss"][:4] == pytest.approx(plain["id_loss"][:4], rel=1e-6)
    assert late["id_loss"][4] != pytest.approx(plain["id_loss"][4], rel=1e-6)
    assert late["loss"][3] == pytest.approx(late["id_loss"][3] + 0.5 * late["test_map_l1.loss"][3], rel=1e-6)


@pytest.mark.parametrize(
    "start, message", [(-1, "must be >= 0"), (1.5, r"in \[0, 1\)"), ("later", "expected a step"), (True, "expected")]
)
def test_a_bad_start_is_an_error_naming_the_item(start, message):
    with pytest.raises(ValueError, match=r"regularizers\[0\]\.start: .*" + message):
        config_from_dict({"regularizers": [{"name": "ecloss", "start": start}]})


def test_start_as_a_fraction_of_the_run():
    from explainface.training.regularizer_specs import start_step

    cfg = config_from_dict({"regularizers": [{"name": "ecloss", "start": 0.6}, {"name": "ecloss"}]})
    assert cfg.regularizers[0]["start"] == 0.6 and "start" not in cfg.regularizers[1]
    assert start_step(0.6, 378) == 227 and start_step(40, 378) == 40


@register_regularizer("test_nan_at")
class NanAt(Regularizer):
    """0 until step `at`, then NaN: a regulariser that diverges."""

    def __init__(self, at: int = 3) -> None:
        super().__init__()
        self.at = at

    def loss(self, ctx: StepContext) -> torch.Tensor:
        value = ctx.embedding.sum() * 0
        return value + float("nan") if ctx.step + 1 >= self.at else value


def test_a_regulariser_that_returns_nan_stops_training_and_keeps_the_previous_steps_checkpoint(tmp_path):
    """Issue 26: NaN at step k -> TrainingDiverged naming step k; the checkpoint on disk is step k-1's, finite."""
    from explainface.errors import TrainingDiverged
    from explainface.training.checkpoint import load_checkpoint
    from explainface.training.trainer import Trainer

    cfg = load_config(None, [*TINY, "optim.max_steps=8", "run.checkpoint_every=1",
                             "regularizers=[{name: test_nan_at, beta: 1.0, at: 4}]"])  # fmt: skip
    with pytest.raises(TrainingDiverged, match="training diverged at step 4: the loss is nan") as e:
        Trainer(cfg, tmp_path / "run", progress=False).train()
    assert e.value.step == 4 and e.value.checkpoint == str(tmp_path / "run" / "checkpoints" / "last.safetensors")
    tensors, state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert state["step"] == 3
    assert all(bool(torch.isfinite(v).all()) for v in tensors.values() if v.is_floating_point())
