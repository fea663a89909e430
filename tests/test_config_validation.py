"""Bad training input ends in one clear error, never a traceback, a hang or a silent wrong number (issue 15):
config values checked when loaded (naming the key and the file or override), devices checked before training,
and Ctrl-C in training saving a checkpoint and raising `TrainingInterrupted`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from explainface.errors import InputError, TrainingInterrupted
from explainface.training.config import (
    FIELD_RULES,
    TrainConfig,
    check_config,
    check_device,
    config_from_dict,
    load_config,
    parse_overrides,
)

ROOT = Path(__file__).resolve().parents[1]
CPU_CONFIG = ROOT / "configs/cpu/vgg16_bn_softmax.yaml"
TINY = [
    "model.width=0.125", "model.input_size=56", "data.identities=8", "data.per_identity=6", "data.workers=0",
    "optim.batch_size=8", "optim.warmup_steps=2", "run.log_every=1", "run.deterministic=true", "run.threads=1",
    "val.pairs=null", "run.checkpoint_every=1000",
]  # fmt: skip

SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(TrainConfig) if f.name != "regularizers"}
FIELDS = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


# ------------------------------------------------------------------------------------------- config values

BAD = [
    # the cases: a TypeError deep inside, a hang, a ZeroDivisionError, exit 0 without training
    ("optim.lr=abc", r"optim\.lr: must be a number > 0, got 'abc'"),
    ("optim.batch_size=-1", r"optim\.batch_size: must be an integer >= 1, got -1"),
    ("optim.batch_size=0", r"optim\.batch_size: must be an integer >= 1, got 0"),
    ("optim.epochs=0", r"optim\.epochs: must be an integer >= 1, got 0"),
    ("optim.epochs=-3", r"optim\.epochs: must be an integer >= 1"),
    ("optim.max_steps=-15", r"optim\.max_steps: must be an integer >= 0 or null, got -15"),  # 0: save it untrained
    ("data.kind=bogus", r"data\.kind: must be one of synthetic, folder, recordio, images, got 'bogus'"),
    # registries
    ("model.name=resnet50", r"model\.name: must be one of .*iresnet50.*vgg16_bn.*, got 'resnet50'"),
    ("head.name=ArcFace", r"head\.name: must be one of arcface, cosface, none, partial_fc, softmax, got 'ArcFace'"),
    ("head.margin=sphereface", r"head\.margin: must be one of arcface, cosface, none"),
    ("optim.schedule=linear", r"optim\.schedule: must be one of cosine, step, constant"),
    ("run.amp=fp32", r"run\.amp: must be one of auto, off, bf16, fp16"),
    ("run.device=bogus", r"run\.device: must be auto, cpu, cuda, cuda:N or mps, got 'bogus'"),
    ("run.device=cuda:x", r"run\.device: must be auto, cpu"),
    ("data.difficulty=impossible", r"data\.difficulty: must be one of easy, hard, medium or a number in \[0, 3\]"),
    ("data.difficulty=4", r"data\.difficulty: must be .* a number in \[0, 3\], got 4"),
    # types: a bool is not an int nor an int a bool; numbers are finite
    ("optim.epochs=true", r"optim\.epochs: must be an integer >= 1, got True"),
    ("data.flip=1", r"data\.flip: must be true or false, got 1"),
    ("run.deterministic=yes please", r"run\.deterministic: must be true or false"),
    ("optim.batch_size=8.0", r"optim\.batch_size: must be an integer >= 1, got 8\.0"),
    ("optim.lr=.nan", r"optim\.lr: must be a number > 0, got nan"),
    ("optim.lr=.inf", r"optim\.lr: must be a number > 0, got inf"),
    ("optim.lr=[0.1]", r"optim\.lr: must be a number > 0, got \[0\.1\]"),
    ("model.width=" + "9" * 400, r"model\.width: must be a number in \(0, 8\], got 9+\.\.\.9+ \("),  # cut short
    ("run.channels_last=maybe", r"run\.channels_last: must be auto or true or false, got 'maybe'"),
    ("model.target_layer=''", r"model\.target_layer: must be a non-empty string or null"),
    ("data.root=[a, b]", r"data\.root: a list of folders is read by data\.kind=images only"),
    ("data.root=[a, '']", r"data\.root: must be a non-empty string or a list \(of a non-empty string\) or null"),
    # ranges
    ("model.dropout=1", r"model\.dropout: must be a number in \[0, 1\), got 1"),
    ("model.width=0", r"model\.width: must be a number in \(0, 8\]"),
    ("model.embedding_dim=0", r"model\.embedding_dim: must be an integer in \[1, 65536\]"),
    ("model.embedding_dim=100000000000", r"model\.embedding_dim: must be an integer in \[1, 65536\]"),
    ("head.sample_rate=0", r"head\.sample_rate: must be a number in \(0, 1\]"),
    ("head.sample_rate=1.5", r"head\.sample_rate: must be a number in \(0, 1\]"),
    ("head.s=-64", r"head\.s: must be a number > 0"),
    ("optim.momentum=1", r"optim\.momentum: must be a number in \[0, 1\)"),
    ("optim.weight_decay=-1e-4", r"optim\.weight_decay: must be a number >= 0"),
    ("optim.milestones=[0.5, 1.5]", r"optim\.milestones: must be a list of numbers in \[0, 1\], got \[0\.5, 1\.5\]"),
    ("optim.milestones=0.5", r"optim\.milestones: must be a list of numbers"),
    ("optim.grad_clip=0", r"optim\.grad_clip: must be a number > 0 or null"),
    ("optim.max_minutes=0", r"optim\.max_minutes: must be a number > 0 or null"),
    ("optim.warmup_steps=-1", r"optim\.warmup_steps: must be an integer >= 0"),
    ("data.workers=-1", r"data\.workers: must be an integer in \[0, 256\]"),
    ("data.seed=-1", r"data\.seed: must be an integer >= 0"),
    ("run.seed=2147483648", r"run\.seed: must be an integer in \[0, 2147483648\)"),
    ("run.threads=0", r"run\.threads: must be an integer in \[1, 1024\] or null"),
    ("run.checkpoint_every=0", r"run\.checkpoint_every: must be an integer >= 1"),
    ("run.log_every=0", r"run\.log_every: must be an integer >= 1"),
    ("val.every_steps=-1", r"val\.every_steps: must be an integer >= 0"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[b[0][:40] for b in BAD])
def test_a_bad_value_is_an_input_error_naming_the_key_and_the_override(override, message):
    with pytest.raises(InputError, match=message) as err:
        load_config(CPU_CONFIG, [override])
    assert str(err.value).endswith(f"(override {override!r})")


@pytest.mark.parametrize("key", FIELDS)
def test_every_field_of_every_section_is_checked(key):
    with pytest.raises(InputError, match=rf"^{re.escape(key)}: must be .*, got \{{'x': 1\}} \(override"):
        load_config(None, [f"{key}={{x: 1}}"])


def test_every_rule_names_a_real_field():
    assert set(FIELD_RULES) <= set(FIELDS)


@pytest.mark.parametrize(
    "overrides",
    [
        ["optim.lr=1"],  # an int is a fine float
        ["optim.max_steps=null", "optim.grad_clip=null", "run.threads=null", "optim.max_minutes=0.5"],
        ["data.difficulty=2.5"],
        ["data.difficulty=hard"],
        ["run.channels_last=false"],
        ["run.device=cuda:3"],
        ["run.device=mps"],  # loads anywhere: the trainer checks the machine
        ["data.kind=recordio"],  # the paper configs: the data root comes with the run (explainface experiment)
        ["val.pairs=synthetic", "val.heldout_identities=20", "val.heldout_per_identity=2"],
        ["optim.milestones=[]"],
        ["model.target_layer=features.relu5_3"],
        ["head.name=partial_fc", "head.m=0"],
    ],
    ids=str,
)
def test_good_values_load_and_round_trip_through_a_checkpoint_dict(overrides):
    cfg = load_config(CPU_CONFIG, overrides)
    assert config_from_dict(cfg.to_dict()) == cfg


def test_all_shipped_configs_load():
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        assert isinstance(load_config(path), TrainConfig), path


def test_synthetic_validation_pairs_need_enough_held_out_faces():
    with pytest.raises(InputError, match=r"val\.heldout_identities: val\.pairs=synthetic needs at least 20, got 5"):
        load_config(None, ["val.pairs=synthetic", "val.heldout_identities=5"])
    with pytest.raises(InputError, match=r"val\.heldout_per_identity: .* needs at least 2, got 1"):
        load_config(None, ["val.pairs=synthetic", "val.heldout_per_identity=1"])
    assert load_config(None, ["val.pairs=null", "val.heldout_identities=5"]).val.heldout_identities == 5


def test_regularizer_options_beta_and_keys_are_checked():
    cases = {
        "regularizers=[{name: ecloss, k: abc}]": r"regularizers\[0\]\.k: regularizer 'ecloss' takes an integer or full",
        "regularizers=[{name: ecloss, tau: .nan}]": r"regularizers\[0\]\.tau: .* takes a number, got nan",
        "regularizers=[{name: ecloss, normalize: L2}]": r"regularizers\[0\]\.normalize: .* takes none or max or l2",
        "regularizers=[{name: yin, window: [32, a]}]": r"regularizers\[0\]\.window: .* takes a list of numbers",
        "regularizers=[{name: ecloss, beta: [1]}]": r"regularizers\[0\]\.beta: must be a number >= 0, \"auto\"",
        "regularizers=[{name: ecloss, beta: true}]": r"regularizers\[0\]\.beta: must be a number",
        "regularizers=[{name: ecloss, beta: .inf}]": r"regularizers\[0\]\.beta: must be finite",
        "regularizers=[{name: ecloss, beta: 'auto:inf'}]": r"regularizers\[0\]\.beta: must be finite",
        "regularizers=[{name: ecloss, 3: 4}]": r"regularizers\[0\]: option names must be strings, got 3",
        "regularizers=[{name: [ecloss]}]": r"regularizers\[0\]: expected a mapping with a `name`",
    }
    for override, message in cases.items():
        with pytest.raises(InputError, match=message):
            load_config(None, [override])
    ok = load_config(None, ["regularizers=[{name: ecloss, k: full, beta: 'auto:0.2'}, {name: yin, window: [8, 4]}]"])
    assert [r["name"] for r in ok.regularizers] == ["ecloss", "yin"]


# ------------------------------------------------------------------------------------- files and overrides


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_error_names_the_file_of_the_base_chain_that_set_the_bad_value(tmp_path):
    base = _write(tmp_path / "base.yaml", "optim: {lr: 0.1, batch_size: -2}\n")
    child = _write(tmp_path / "child.yaml", "base: base.yaml\noptim: {epochs: 3}\n")
    with pytest.raises(InputError, match=rf"^{base}: optim\.batch_size: must be an integer >= 1, got -2$"):
        load_config(child)
    fixed = load_config(child, ["optim.batch_size=4"])  # the override replaces the base's value
    assert (fixed.optim.batch_size, fixed.optim.lr, fixed.optim.epochs) == (4, 0.1, 3)
    _write(child, "base: base.yaml\noptim: {epochs: 0, batch_size: 4}\n")
    with pytest.raises(InputError, match=rf"^{child}: optim\.epochs: must be an integer >= 1, got 0$"):
        load_config(child)
    with pytest.raises(InputError, match=r"^optim\.epochs: .*, got -1 \(override 'optim\.epochs=-1'\)$"):
        load_config(child, ["optim.epochs=-1"])
    _write(base, "optim: {lr: 0.1, lrr: 3}\n")
    with pytest.raises(InputError, match=rf"^{base}: optim: unknown key\(s\) lrr; known: batch_size"):
        load_config(child)


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("base: missing.yaml\n", FileNotFoundError, r"missing\.yaml \(the `base:` of .*/c\.yaml\)"),
        ("base: c.yaml\n", InputError, r"c\.yaml: circular `base:` chain"),
        ("base: 5\n", InputError, r"c\.yaml: base: must be the path of another config file, got 5"),
        ("base: [a.yaml]\n", InputError, r"c\.yaml: base: must be the path"),
        ('base: "a\\0b"\n', InputError, r"c\.yaml: base: must be the path"),
        ("optim: [unclosed\n", InputError, r"c\.yaml: not valid YAML"),
        ("- optim\n- run\n", InputError, r"c\.yaml: a config must be a mapping of sections, got list"),
        ("optim: 3\n", InputError, r"c\.yaml: optim: expected a section \(mapping\), got 3"),
        ("optim: {1: 2, null: 3}\n", InputError, r"c\.yaml: optim: unknown key\(s\) 1, None; known"),
        ("optim: &a {lr: *a}\n", InputError, r"c\.yaml: optim\.lr: must be a number > 0, got \{'lr': \{'lr': "),
        ("regularizer: {name: ecloss, k: 1, 2: 3}\n", InputError, r"c\.yaml: regularizer: unknown key\(s\) 2"),
        ("base: b.yaml\nregularizers: {1: {beta: 2}}\n", InputError, r"c\.yaml: regularizers\.1: .* only 1 item"),
        ("[" * 20000, InputError, r"c\.yaml: not"),
    ],
    ids=[
        "missing-base",
        "self-base",
        "int-base",
        "list-base",
        "nul-base",
        "broken",
        "list",
        "scalar-section",
        "int-keys",
        "alias-loop",
        "legacy-int-key",
        "edit-missing-item",
        "deep",
    ],  # fmt: skip
)
@pytest.mark.slow
def test_bad_files_and_base_chains_name_the_file(tmp_path, text, error, message):
    _write(tmp_path / "b.yaml", "regularizers: [{name: ecloss}]\n")
    with pytest.raises(error, match=message):
        load_config(_write(tmp_path / "c.yaml", text))


def test_a_base_chain_loop_and_a_file_that_is_not_text_name_the_files(tmp_path):
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(InputError, match=r"a\.yaml: circular `base:` chain \(.*a\.yaml -> .*b\.yaml -> .*a\.yaml\)"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"optim: {lr: \xff\xfe}\n")
    with pytest.raises(InputError, match=r"bin\.yaml: not a UTF-8 text file"):
        load_config(tmp_path / "bin.yaml")
    with pytest.raises(FileNotFoundError, match="config file not found: .*nothere.yaml"):
        load_config(tmp_path / "nothere.yaml")


@pytest.mark.parametrize(
    "items, message",
    [
        (["optim.lr=[unclosed"], r"override 'optim\.lr=\[unclosed': the value is not valid YAML"),
        (["optim..lr=1"], r"override 'optim\.\.lr=1' must look like section\.key=value"),
        (["=1"], r"must look like section\.key=value"),
        (["optim.lr"], r"must look like section\.key=value"),
        (["optim=1", "optim.lr=2"], r"override 'optim\.lr=2': optim is already set to a value"),
        ([3], r"override 3 must be a string"),
    ],
)
def test_bad_override_strings_are_input_errors(items, message):
    with pytest.raises(InputError, match=message):
        parse_overrides(items)


def test_overrides_that_do_not_fit_the_config_name_the_override():
    with pytest.raises(InputError, match=r"optim: expected a section \(mapping\), got 5 \(override 'optim=5'\)"):
        load_config(None, ["optim=5"])
    with pytest.raises(InputError, match=r"regularizers has only 0 item\(s\) \(override 'regularizers.0.beta=1'\)"):
        load_config(CPU_CONFIG, ["regularizers.0.beta=1"])  # base.yaml: regularizers: []
    with pytest.raises(InputError, match=r"^regularizers: there is no item 0 to edit; give the whole list"):
        load_config(None, ["regularizers.0.beta=1"])
    with pytest.raises(InputError, match=r"^config: unknown key\(s\) optm; known: data, head"):
        load_config(None, ["optm.lr=1"])


def test_a_checkpoint_config_and_a_config_edited_in_code_are_checked_too(tmp_path):
    saved = TrainConfig().to_dict()
    saved["optim"]["batch_size"] = "64"
    with pytest.raises(InputError, match=r"^checkpoint config: optim\.batch_size: must be an integer >= 1, got '64'"):
        config_from_dict(saved)
    with pytest.raises(InputError, match=r"^checkpoint config: expected a section \(mapping\), got \[\]"):
        config_from_dict([])
    cfg = load_config(None, TINY)
    assert check_config(cfg) is cfg
    cfg.optim.max_steps = -1  # (0 is fine: the network saved untrained; `o.max_steps or ...` read it as "no limit")
    with pytest.raises(InputError, match=r"^the trainer's config: optim\.max_steps: must be an integer >= 0 or null"):
        from explainface.training.trainer import Trainer

        Trainer(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------- devices


class _FakeCuda:
    def __init__(self, available: bool, count: int) -> None:
        self.available, self.count = available, count

    def is_available(self) -> bool:
        return self.available

    def device_count(self) -> int:
        return self.count


@pytest.mark.parametrize(
    "build, available, count, name, message",
    [
        (None, False, 0, "cuda", r"^run\.device=cuda: CUDA is not available in this PyTorch build \(torch .*\)"),
        (None, False, 0, "cuda:0", r"^run\.device=cuda:0: CUDA is not available in this PyTorch build"),
        ("12.4", False, 0, "cuda", r"^run\.device=cuda: no CUDA device is visible \(torch .*, CUDA 12\.4\)"),
        ("12.4", True, 2, "cuda:2", r"^run\.device=cuda:2: this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"),
        ("12.4", True, 2, "bogus", r"^run\.device='bogus' is not a device \(auto, cpu, cuda, cuda:N or mps\)"),
        ("12.4", True, 2, "cuda:", r"^run\.device='cuda:' is not a device"),
        ("12.4", True, 2, 0, r"^run\.device=0 is not a device"),
    ],
)
def test_check_device_names_what_is_missing(monkeypatch, build, available, count, name, message):
    monkeypatch.setattr(torch.version, "cuda", build)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    fake = _FakeCuda(available, count)
    monkeypatch.setattr(torch.cuda, "is_available", fake.is_available)
    monkeypatch.setattr(torch.cuda, "device_count", fake.device_count)
    with pytest.raises(InputError, match=message):
        check_device(name)


def test_check_device_resolves_auto_and_accepts_what_the_machine_has(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    fake = _FakeCuda(True, 2)
    monkeypatch.setattr(torch.cuda, "is_available", fake.is_available)
    monkeypatch.setattr(torch.cuda, "device_count", fake.device_count)
    assert [check_device(n) for n in ("auto", "cpu", "cuda", "cuda:1")] == ["cuda", "cpu", "cuda", "cuda:1"]
    fake.available = False
    assert check_device("auto") == "cpu"
    with pytest.raises(InputError, match=r"^--device=cuda: no CUDA device"):
        check_device("cuda", "--device")


def test_the_trainer_checks_the_device_before_building_anything(tmp_path):
    from explainface.training.trainer import Trainer

    cfg = load_config(None, [*TINY, "run.device=cuda:999"])  # missing on every machine this runs on
    with pytest.raises(InputError, match=r"^run\.device=cuda:999: "):
        Trainer(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ interrupts


def _interrupt_at(monkeypatch, step: int) -> None:
    """Ctrl-C (a KeyboardInterrupt) when training is about to run `step`: in the loop, as a signal would."""
    from explainface.training.trainer import Trainer

    real = Trainer.train_step

    def step_or_interrupt(self, *args, **kwargs):
        if self.step == step:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", step_or_interrupt)


@pytest.mark.slow
def test_ctrl_c_saves_the_step_raises_training_interrupted_and_the_run_resumes_exactly(tmp_path, monkeypatch):
    from explainface.training.checkpoint import load_checkpoint
    from explainface.training.trainer import Trainer

    cfg = [*TINY, "optim.max_steps=6"]
    Trainer(load_config(None, cfg), tmp_path / "ref", progress=False).train()

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_at(m, 3)
        with pytest.raises(TrainingInterrupted) as err:
            Trainer(load_config(None, cfg), out, progress=False).train()
    assert isinstance(err.value, KeyboardInterrupt)  # library callers still see an interrupt
    ckpt = out / "checkpoints" / "last.safetensors"
    assert (err.value.step, err.value.checkpoint) == (3, str(ckpt))
    assert json.loads(ckpt.with_suffix(".json").read_text())["step"] == 3
    assert str(err.value) == f"interrupted at step 3, checkpoint saved ({ckpt}); run the same command to resume"

    resumed = Trainer(load_config(None, cfg), out, progress=False)
    assert resumed.step == 3
    assert resumed.train()["steps"] == 6
    a, _ = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.safetensors")
    b, state = load_checkpoint(ckpt)
    assert state["step"] == 6
    for key in a:
        if key.startswith(("model.", "head.")):
            assert torch.equal(a[key], b[key]), key


def test_ctrl_c_in_the_train_command_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    from explainface.cli import main

    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 2)
    rc = main(["train", "--config", str(CPU_CONFIG), "--out", str(out), "--quiet", *TINY, "optim.max_steps=5"])
    err = capsys.readouterr().err
    ckpt = out / "checkpoints" / "last.safetensors"
    assert rc == 130
    assert f"explainface train: interrupted at step 2, checkpoint saved ({ckpt}); run the same command" in err
    assert "Traceback" not in err
    assert json.loads(ckpt.with_suffix(".json").read_text())["step"] == 2
