"""300-W `.pts` landmark files: 1-based on disk, 0-based in memory, clear errors."""

import numpy as np
import pytest

from explainface.readers.landmarks import read_pts, write_pts


def test_pts_round_trip_gives_the_same_zero_based_points(tmp_path):
    pts = (np.random.default_rng(0).random((68, 2)) * 111).astype(np.float32)
    back = read_pts(write_pts(tmp_path / "a.pts", pts))
    assert back.dtype == np.float32 and back.shape == (68, 2)
    np.testing.assert_allclose(back, pts, atol=1e-3)


def test_written_pts_has_the_300w_header_and_one_based_rows(tmp_path):
    pts = np.zeros((68, 2), np.float32)
    pts[0] = (10.25, 20.5)
    lines = (write_pts(tmp_path / "a.pts", pts)).read_text().splitlines()
    assert lines[:3] == ["version: 1", "n_points: 68", "{"] and lines[-1] == "}" and len(lines) == 68 + 4
    assert [float(v) for v in lines[3].split()] == [11.25, 21.5]
    assert len(lines[3].split()[0].split(".")[1]) >= 3  # at least 3 decimals


def test_hand_written_one_based_pts_reads_as_zero_based_pixels(tmp_path):
    f = tmp_path / "hand.pts"
    f.write_text("version: 1\nn_points:  3\n{\n1 1\n10.5 20\n64.000 0.5\n}\n")
    np.testing.assert_array_equal(read_pts(f), np.array([[0, 0], [9.5, 19], [63, -0.5]], np.float32))


def test_bare_rows_pts_is_accepted(tmp_path):
    f = tmp_path / "bare.pts"
    f.write_text("1 2\n3 4\n\n5.5 6.5\n")
    np.testing.assert_array_equal(read_pts(f), np.array([[0, 1], [2, 3], [4.5, 5.5]], np.float32))


@pytest.mark.parametrize(
    "text, problem",
    [
        ("version: 1\nn_points: 3\n{\n1 1\n2 2\n}\n", "n_points: 3 but the file has 2"),
        ("version: 1\nn_points: 2\n{\n1 1\nx 2\n}\n", "non-numeric"),
        ("version: 1\nn_points: 2\n1 1\n2 2\n", "'{'"),
        ("version: 1\nn_points: 2\n{\n1 1\n2 2\n", "closing '}'"),
        ("1 1 1\n2 2 2\n", "two numbers"),
        ("", "empty"),
    ],
    ids=["wrong_count", "non_numeric", "no_open_brace", "no_close_brace", "three_columns", "empty"],
)
def test_malformed_pts_raises_value_error_naming_the_file_and_problem(tmp_path, text, problem):
    f = tmp_path / "bad_file.pts"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        read_pts(f)
    assert "bad_file.pts" in str(e.value) and problem in str(e.value)


def test_write_pts_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        write_pts(tmp_path / "a.pts", np.zeros((68, 3)))
