"""The `explainface` command: --help, --version and the core's subcommands."""

import subprocess
import sys

import pytest

import explainface
from explainface.cli import main


@pytest.mark.slow
def test_console_script_prints_help_and_version():
    out = subprocess.run([sys.executable, "-m", "explainface", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "ECLoss" in out.stdout and "models" in out.stdout
    out = subprocess.run([sys.executable, "-m", "explainface", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"explainface {explainface.__version__}"


def test_models_lists_every_network_with_a_14x14_target(capsys):
    assert main(["models", "--width", "0.25", "--input-size", "112"]) == 0
    out = capsys.readouterr().out
    names = ("vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "iresnet18", "iresnet34", "iresnet50",
             "iresnet100")  # fmt: skip
    for name in names:
        assert f"\n{name} " in out
    assert out.count("x14x14") == len(names)
    assert out.count(" act3 ") == 4  # the iresnets' target: the ReLU after layer3


def test_templates_counts_and_draws_a_png(tmp_path, capsys):
    png = tmp_path / "t.png"
    assert main(["templates", "--k", "full", "--out", str(png), "--show", "16"]) == 0
    out = capsys.readouterr().out
    assert "19307 templates of 14x14: 1 negative, 196 one-peak, 19110 two-peak" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_exit_with_usage_error():
    with pytest.raises(SystemExit) as e:
        main(["models", "--input-size", "100"])
    assert e.value.code == 2
