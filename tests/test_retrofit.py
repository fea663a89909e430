"""The retrofit (issue 23): pretrained weights from a .pth / .safetensors / checkpoint, training without an identity
loss on unlabelled folders, `explainface retrofit` end to end on an insightface-layout iresnet18 state dict, and
checkpoints that reload to exactly the fine-tuned weights (also of a network whose builder loads its own)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from explainface.errors import InputError
from explainface.models import create_model
from explainface.training.checkpoint import load_model
from explainface.training.config import load_config
from explainface.training.pretrained import build_network, infer_model, read_state_dict
from explainface.training.trainer import Trainer

NET = {"width": 0.125, "input_size": 56, "embedding_dim": 16}
#: A few fast steps at 56 px on two threads' worth of CPU.
FAST = ["optim.batch_size=4", "data.workers=0", "run.threads=1", "run.log_every=1", "run.checkpoint_every=1000"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Synthetic faces exported to folders (identity folders under train/, 24 images)."""
    from explainface.synthetic.export import export_synthetic

    out = tmp_path_factory.mktemp("faces")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_synthetic(out, identities=6, per_identity=4, size=56, heldout_identities=0, progress=False)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A randomly initialised iresnet18 saved with torch.save in insightface's key layout (their backbone.pth)."""
    torch.manual_seed(7)
    net = create_model("iresnet18", **NET)
    path = tmp_path_factory.mktemp("weights") / "backbone.pth"
    torch.save(net.state_dict(), path)
    return path


def _weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_pretrained_weights_load_from_a_pth_a_safetensors_and_a_checkpoint(backbone, tmp_path):
    from explainface.training.checkpoint import prefixed, save_checkpoint

    want = torch.load(backbone, weights_only=True)
    save_file(want, str(tmp_path / "w.safetensors"))
    ckpt = save_checkpoint(tmp_path / "c.safetensors", prefixed("model", want), {"config": {}, "step": 0})
    torch.save({"state_dict": {f"module.{k}": v for k, v in want.items()}}, tmp_path / "wrapped.pth")
    for path in (backbone, tmp_path / "w.safetensors", ckpt, tmp_path / "wrapped.pth"):
        m = load_config(None, ["model.name=iresnet18", "model.width=0.125", "model.input_size=56",
                               "model.embedding_dim=16", f"model.weights={path}"]).model  # fmt: skip
        assert _weights_equal(build_network(m).state_dict(), want), path
    assert infer_model(read_state_dict(backbone)) == {"name": "iresnet18", "width": 0.125, "embedding_dim": 16,
                                                      "input_size": 112}  # fmt: skip


def test_weights_that_do_not_fit_are_an_error_naming_the_file_and_the_tensors(backbone, tmp_path):
    m = load_config(None, ["model.name=iresnet34", "model.width=0.125", "model.input_size=56",
                           "model.embedding_dim=16", f"model.weights={backbone}"]).model  # fmt: skip
    with pytest.raises(InputError, match=rf"{backbone} \(model.weights\): its weights do not fit the network "
                       r"\(iresnet34 .*\): .*tensor\(s\) missing \(layer1.2.bn1.weight"):  # fmt: skip
        build_network(m)
    torch.save({"weights": object()}, tmp_path / "pickled.pth")  # a pickle that would run code to load
    m.weights = str(tmp_path / "pickled.pth")
    with pytest.raises(InputError, match=r"pickled.pth \(model.weights\): not a PyTorch state dict readable with "
                       "weights_only=True"):  # fmt: skip
        build_network(m)
    m.weights = str(tmp_path / "nowhere.pth")
    with pytest.raises(FileNotFoundError, match="pretrained weights not found: .*nowhere.pth"):
        build_network(m)


def test_unlabelled_folders_train_without_an_identity_loss(faces, backbone, tmp_path):
    from explainface.readers.unlabelled import UnlabelledImages

    heldout, train = faces["train_dir"] / "id00000", faces["train_dir"] / "id00001"
    (train / "broken.jpg").write_bytes(b"not a jpeg")
    ds = UnlabelledImages([heldout, train], size=56)
    assert len(ds) == 9 and ds.num_classes == 1 and ds[0][0].shape == (3, 56, 56) and ds[0][1] == 0
    broken = [p.name for p in ds.paths].index("broken.jpg")
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert torch.equal(ds[broken][0], ds[broken + 1][0])  # the bad file is skipped (the next one), named once
    (train / "broken.jpg").unlink()
    base = ["model.name=iresnet18", "model.width=0.125", "model.input_size=56", "model.embedding_dim=16",
            f"model.weights={backbone}", "data.kind=images", f"data.root=[{faces['train_dir']}]", "head.name=none",
            "optim.max_steps=2", "optim.warmup_steps=0", *FAST]  # fmt: skip
    with pytest.raises(InputError, match=r"regularizers\[0\]\.beta: 'auto' keeps .* head.name=none"):
        load_config(None, [*base, "regularizers=[{name: ecloss_fit, beta: auto}]"])
    with pytest.raises(InputError, match="head.name=none .* no regularizers: nothing to train"):
        Trainer(load_config(None, base), tmp_path / "nothing", progress=False)
    with pytest.raises(InputError, match="data.root: a list of folders is read by data.kind=images only"):
        load_config(None, ["data.kind=folder", "data.root=[a, b]"])
    t = Trainer(load_config(None, [*base, "regularizers=[{name: preserve, beta: 1.0}]"]), tmp_path / "r",
                progress=False)  # fmt: skip
    assert len(t.dataset) == 24 and t.num_classes == 1 and list(t.module.head.parameters()) == []
    summary = t.train()
    assert summary["steps"] == 2 and summary["last"]["id_loss"] == 0.0


def test_zero_steps_saves_the_pretrained_network_as_it_is(backbone, tmp_path):
    cfg = load_config(None, ["model.name=iresnet18", "model.width=0.125", "model.input_size=56",
                             "model.embedding_dim=16", f"model.weights={backbone}", "model.identity_layers=[act3]",
                             "head.name=none", "data.identities=2", "data.per_identity=4", "optim.max_steps=0",
                             *FAST])  # fmt: skip
    summary = Trainer(cfg, tmp_path / "orig", progress=False).train()
    assert summary["steps"] == 0
    loaded = load_model(summary["checkpoint"]).model
    assert _weights_equal(loaded.state_dict(), torch.load(backbone, weights_only=True))
    theirs = create_model("iresnet18", target_act="none", **NET).eval()  # insightface's function: no ReLU
    theirs.load_state_dict(torch.load(backbone, weights_only=True))
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(loaded(x), theirs(x))


@pytest.mark.slow
def test_a_tiny_retrofit_of_an_insightface_state_dict_keeps_the_embedding_and_reloads(faces, backbone, tmp_path):
    from explainface.training.retrofit import preserved_cosine, retrofit_config

    cfg = retrofit_config(backbone, faces["train_dir"], steps=6, overrides=FAST)
    assert (cfg.model.name, cfg.model.width, cfg.model.embedding_dim) == ("iresnet18", 0.125, 16)
    assert cfg.head.name == "none" and cfg.data.kind == "images" and cfg.optim.freeze_bn
    assert [r["name"] for r in cfg.regularizers] == ["ecloss_fit", "preserve"]
    assert cfg.regularizers[1]["identity_layers"] == ["act3"]  # the original is insightface's: no ReLU
    t = Trainer(cfg, tmp_path / "rf", progress=False)
    summary = t.train()
    loaded = load_model(summary["checkpoint"])
    assert _weights_equal(loaded.model.state_dict(), t.module.model.state_dict())  # exactly the fine-tuned weights
    assert loaded.layer == "act3"

    def cosine(name, *overrides):
        c = retrofit_config(backbone, faces["train_dir"], steps=6, overrides=[*FAST, *overrides])
        return preserved_cosine(c, Trainer(c, tmp_path / name, progress=False).train()["checkpoint"])

    kept = preserved_cosine(cfg, summary["checkpoint"])
    # The ReLU our port adds (act3) moves a random network's embedding (cos ~0.76 at step 0); the preservation term
    # pulls it back towards insightface's function, which the same steps without it do not.
    start, drift = cosine("start", "optim.max_steps=0"), cosine("free", "regularizers.1.beta=0.0")
    assert kept["faces"] == 24 and kept["mean"] > start["mean"] + 0.02 and kept["mean"] > drift["mean"] + 0.02


@pytest.mark.slow
def test_the_retrofit_command_writes_a_checkpoint_that_the_pipeline_reads_and_resumes(faces, backbone, tmp_path,
                                                                                       capsys):  # fmt: skip
    import json

    import explainface as ef
    from explainface.cli.main import main

    out = tmp_path / "rf"
    # the overrides right after --faces's folders: they are told apart from folders
    cmd = ["retrofit", "--model", str(backbone), "--out", str(out), "--steps", "2", "--quiet", "--faces",
           str(faces["train_dir"] / "id00000"), str(faces["train_dir"] / "id00001"), *FAST]  # fmt: skip
    assert main(cmd) == 0
    said = capsys.readouterr().out
    assert "retrofitted 2/2 steps; the embedding's cosine to the original's on 8 of the faces" in said
    assert json.loads((out / "retrofit.json").read_text())["preserved"]["faces"] == 8
    ckpt = out / "checkpoints" / "last.safetensors"
    assert ef.explain(str(ckpt), str(faces["train_dir"]), n_faces=4, runs=1, limit=8, progress=False)["ar_mean"] >= 0
    stamp = ckpt.stat().st_mtime_ns
    assert main(cmd) == 0 and ckpt.stat().st_mtime_ns == stamp  # the same command: finished, nothing retrained
    assert "resuming from" in capsys.readouterr().err
    for bad, message in (
        (["--faces", str(tmp_path / "nowhere")], "face folder not found: .*nowhere"),
        (["--model", str(tmp_path / "nowhere.pth")], "--model .*nowhere.pth: no such file, nor a registered network"),
        (["--model", "iresnet50"], "--model iresnet50: this registered network has no pretrained weights"),
    ):  # fmt: skip
        args = list(cmd)
        flag = bad[0]
        i = args.index(flag)
        args[i + 1 : i + (3 if flag == "--faces" else 2)] = bad[1:]
        args[args.index("--out") + 1] = str(tmp_path / "bad")
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("explainface retrofit: error:") and len(err.splitlines()) == 1
        assert re.search(message, err), err


@pytest.fixture
def self_loading(tmp_path):
    """A registered network whose builder loads its own pretrained weights (as dlib_resnet does), removed after."""
    from explainface.models.iresnet import IResNetFace
    from explainface.models.registry import _MODELS, register_model

    torch.manual_seed(11)
    own = tmp_path / "own.pth"
    torch.save(create_model("iresnet18", **NET).state_dict(), own)

    def test_selfloading_net(width=0.125, input_size=56, embedding_dim=16, dropout=0.0, weights="own"):
        net = IResNetFace(18, width=width, input_size=input_size, embedding_dim=embedding_dim, dropout=dropout)
        if weights == "own":
            net.load_state_dict(torch.load(own, weights_only=True))
        return net

    register_model(test_selfloading_net)
    yield "test_selfloading_net", own
    _MODELS.pop("test_selfloading_net")


def test_a_network_that_loads_its_own_weights_needs_none_and_reloads_fine_tuned(self_loading, faces, tmp_path):
    from explainface.training.retrofit import retrofit_config

    name, own = self_loading
    cfg = retrofit_config(name, faces["train_dir"], steps=3, overrides=FAST)
    assert cfg.model.weights is None and (cfg.model.name, cfg.model.input_size) == (name, 56)
    t = Trainer(cfg, tmp_path / "rf", progress=False)
    start = {k: v.clone() for k, v in t.module.model.state_dict().items()}
    assert _weights_equal(start, torch.load(own, weights_only=True))  # the builder's own weights
    summary = t.train()
    tuned = t.module.model.state_dict()
    assert not _weights_equal(tuned, start)
    assert _weights_equal(load_model(summary["checkpoint"]).model.state_dict(), tuned)
    x = torch.from_numpy(np.zeros((1, 3, 56, 56), np.float32))
    with torch.no_grad():
        assert torch.isfinite(load_model(summary["checkpoint"]).model(x)).all()
