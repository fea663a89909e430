"""The command line's one error path (`explainface.errors`), option checking (`explainface.argtypes`) and the
messages of `templates`, `parts` and `explain` on bad input (issue 15)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from explainface import cli
from explainface.errors import InputError, TrainingInterrupted, run_command
from explainface.parts.masks import face_parts_for_crop, part_label_map
from explainface.parts.sheet import find_images, part_contact_sheet
from explainface.readers.landmarks import check_landmarks_in_image, read_pts, write_pts
from explainface.synthetic import SyntheticFaces
from explainface.synthetic.export import export_synthetic

# --- the error path -----------------------------------------------------------------------------------------------


def test_a_user_error_is_one_line_naming_the_command_and_exit_status_1(capsys):
    def bad():
        raise InputError("x.yaml: optim.lr must be a number, got 'abc'")

    assert run_command("train", bad) == 1
    err = capsys.readouterr().err
    assert err == "explainface train: error: x.yaml: optim.lr must be a number, got 'abc'\n"


def test_an_os_error_shows_its_path_once(capsys):
    def missing():
        open("/nonexistent/dir/file.txt")  # noqa: SIM115

    assert run_command("verify", missing) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("explainface verify: error: ") and err.count("/nonexistent/dir/file.txt") == 1
    assert "No such file" in err and "Traceback" not in err


def test_a_bug_keeps_its_traceback(capsys):
    def bug():
        raise TypeError("unsupported operand")

    with pytest.raises(TypeError, match="unsupported operand"):
        run_command("train", bug)


def test_the_traceback_flag_and_environment_variable_reraise_user_errors(monkeypatch):
    def bad():
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        run_command("train", bad, traceback=True)
    monkeypatch.setenv("EXPLAINFACE_TRACEBACK", "1")
    with pytest.raises(ValueError):
        run_command("train", bad)
    monkeypatch.setenv("EXPLAINFACE_TRACEBACK", "0")
    assert run_command("train", bad) == 1


def test_an_interrupt_says_what_was_saved_and_exits_130(capsys):
    def interrupted():
        raise TrainingInterrupted(17, "runs/x/checkpoints/last.safetensors")

    assert run_command("train", interrupted) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 17" in err and "runs/x/checkpoints/last.safetensors" in err and "resume" in err
    assert isinstance(TrainingInterrupted(1, "c"), KeyboardInterrupt)


@pytest.mark.slow
def test_the_installed_command_prints_no_traceback_for_a_missing_pair_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "explainface", "verify", "--model", str(tmp_path / "m.safetensors"),
                        "--pairs", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "v")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("explainface verify: error: ")
    assert "nope.txt" in r.stderr


# --- option values ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["templates", "--k", "abc"], "argument --k: must be an integer >= 1, got 'abc'"),
        (["templates", "--k", "0"], "argument --k: must be an integer >= 1, got 0"),
        (["templates", "--show", "0", "--out", "t.png"], "argument --show: must be an integer >= 1, got 0"),
        (["templates", "--show", "-1"], "argument --show: must be an integer >= 1, got -1"),
        (["templates", "--width", "0"], "argument --width: must be an integer >= 1, got 0"),
        (["templates", "--out", "DIR"], "argument --out: DIR: a picture's file name must end in .png"),
        (["parts", "d", "--out", "x.txt"], "argument --out: x.txt: a picture's file name must end in .png"),
        (["parts", "d", "--out", "x.png", "--margin", "-2"], "argument --margin: must be a number in [0, inf]"),
        (["synth", "--sheet", "out"], "argument --sheet: out: a picture's file name"),
        (["verify", "--model", "m", "--pairs", "p", "--out", "o", "--batch", "0"], "argument --batch: must be an"),
        (["explain", "--model", "m", "--out", "o", "--rho", "nan"], "argument --rho: must be a number in [0, 1]"),
        (["experiment", "--out", "o", "--seeds", "0"], "argument --seeds: must be an integer >= 1"),
        (["demo", "--minutes", "-1"], "argument --minutes: must be a number in (0, inf]"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_templates_prints_the_file_it_wrote(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli.main(["templates", "--k", "20", "--out", str(out), "--show", "4"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and out.is_file()


# --- landmarks that do not belong to the image --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    export_synthetic(out, 2, 2, size=112, heldout_identities=0, progress=False)
    return out / "train"


def test_landmarks_outside_the_image_are_refused_not_drawn_as_an_empty_mask():
    face = SyntheticFaces(seed=0).sample(identity=0, index=0, size=112)
    lm = face.landmarks.astype(np.float64)
    assert part_label_map(lm, 112, 112).any()
    check_landmarks_in_image(lm, 112, 112)  # the face's own landmarks pass
    with pytest.raises(ValueError, match="landmarks lie outside the image"):
        check_landmarks_in_image(lm + 500, 112, 112)
    with pytest.raises(ValueError, match="landmarks lie outside the face crop"):
        face_parts_for_crop(face.image, lm + 500, "haar", size=64)
    far = lm.copy()
    far[10, 0] = 1e9  # one point: OpenCV's fixed-point polygons would overflow
    with pytest.raises(ValueError, match="far outside"):
        part_label_map(far, 112, 112)


def test_parts_names_each_file_with_landmarks_outside_its_image(tiny_export, tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    images = find_images(tiny_export)
    for p, shift in zip(images[:2], (1e9, 5000.0)):
        (folder / p.name).write_bytes(p.read_bytes())
        lm = read_pts(p.with_suffix(".pts"))
        lm[0, 0] += shift
        lm = lm + (0 if shift > 1e6 else shift)
        write_pts(folder / p.with_suffix(".pts").name, lm)
    with pytest.raises(ValueError, match="no image could be drawn") as e:
        part_contact_sheet(folder, tmp_path / "s.png", n=4, size=48, detector="haar")
    msg = str(e.value)
    assert images[0].name in msg and images[1].name in msg and "outside" in msg
    assert cli.main(["parts", str(folder), "--out", str(tmp_path / "s.png"), "--size", "48", "--detector",
                     "haar"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("explainface parts: error: ") and "outside" in err


def test_explain_says_why_each_face_was_skipped(tiny_export, tmp_path):
    from checkpoints import tiny_checkpoint
    from explainface.evaluate.explainability_pipeline import explain

    folder = tmp_path / "faces"
    folder.mkdir()
    images = find_images(tiny_export)
    (folder / images[0].name).write_bytes(b"not a jpeg")
    (folder / images[1].name).write_bytes(images[1].read_bytes())
    write_pts(folder / images[1].with_suffix(".pts").name, read_pts(images[1].with_suffix(".pts")) + 4000)
    ckpt = tiny_checkpoint(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="no usable faces") as e:
        explain(ckpt, folder, tmp_path / "ex", n_faces=2, runs=1, landmarks="file", progress=False)
    msg = str(e.value)
    assert "skipped 2" in msg and images[0].name in msg and images[1].name in msg
    assert "not a decodable image" in msg and "outside" in msg


def test_library_picture_writers_refuse_a_path_they_cannot_write(tmp_path):
    import torch

    from explainface.losses.templates import save_template_grid
    from explainface.synthetic.contact_sheet import contact_sheet, sample_grid

    with pytest.raises(ValueError, match="out.txt: a picture's file name"):
        save_template_grid(torch.zeros(4, 14, 14), tmp_path / "out.txt")
    with pytest.raises(ValueError, match="limit must be >= 1"):
        save_template_grid(torch.zeros(4, 14, 14), tmp_path / "out.png", limit=0)
    with pytest.raises(ValueError, match="sheet: a picture's file name"):
        contact_sheet(sample_grid(SyntheticFaces(0), 1, 1, 32), tmp_path / "sheet", tile=32)
    with pytest.raises(ValueError, match="margin must be a number >= 0"):
        part_contact_sheet(tmp_path, tmp_path / "s.png", margin=-2)
