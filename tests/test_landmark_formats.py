"""Landmark readers of every format of docs/method.md §6.1, and the 98/106 -> iBUG 68 index maps.

The maps are checked geometrically: a 68-point face is redrawn as a plausible WFLW 98 / LaPa 106
face by interpolating along each contour of the datasets' documented layouts (built here from
the layout descriptions, not from the maps), mapped back with `to_ibug68`, and compared.
"""

import json

import numpy as np
import pytest

from explainface.readers.landmarks import (
    LAPA106_TO_68,
    WFLW98_TO_68,
    WFLW_ATTRIBUTES,
    apply_index_map,
    infer_scheme,
    read_coco_keypoints,
    read_landmarks,
    read_lapa106,
    read_pts,
    read_wflw,
    to_ibug68,
)
from explainface.synthetic.face_model import Expression, Pose, Shape, landmarks_3d, project
from realdata import real_data

# ---------------------------------------------------------------------------
# a frontal 68-point face and its 98 / 106-point versions from the documented layouts


def frontal_face68() -> np.ndarray:
    """The mean synthetic face, frontal, about 80 px wide, centred at (100, 100)."""
    lm3 = landmarks_3d(Shape(), Expression())
    return project(lm3, Pose(roll=0.0, yaw=0.0, scale=40.0, cx=100.0, cy=100.0)).astype(np.float64)


def resample(points: np.ndarray, n: int) -> np.ndarray:
    """`n` points evenly spaced in index parameter along the polyline through `points` (ends included)."""
    points = np.asarray(points, np.float64)
    t, i = np.linspace(0, len(points) - 1, n), np.arange(len(points))
    return np.stack([np.interp(t, i, points[:, 0]), np.interp(t, i, points[:, 1])], axis=1)


def eye8(lm: np.ndarray, first_corner: int, upper: tuple, second_corner: int, lower: tuple) -> np.ndarray:
    """An 8-point eye: first corner, 3 upper-lid points, second corner, 3 lower-lid points (clockwise)."""
    up = resample(lm[[first_corner, *upper, second_corner]], 5)
    lo = resample(lm[[second_corner, *lower, first_corner]], 5)
    return np.vstack([up, lo[1:4]])


def brow9(lm: np.ndarray, brow: range) -> np.ndarray:
    """A 9-point brow: the 5 upper-contour points in iBUG order, then 4 lower-contour points running back."""
    upper = lm[list(brow)]
    lower = resample(upper + [0.0, 3.0], 6)[1:5][::-1]
    return np.vstack([upper, lower])


def as_wflw98(lm: np.ndarray) -> np.ndarray:
    """WFLW layout: contour 0-32; brows 33-41 / 42-50 (upper 5, lower 4); nose 51-54 bridge, 55-59 base;
    right eye 60-67 from the outer corner, left eye 68-75 from the inner corner; mouth 76-95; pupils 96-97."""
    right_eye = eye8(lm, 36, (37, 38), 39, (40, 41))
    left_eye = eye8(lm, 42, (43, 44), 45, (46, 47))
    out = np.vstack(
        [
            resample(lm[0:17], 33),
            brow9(lm, range(17, 22)),
            brow9(lm, range(22, 27)),
            lm[27:31],
            lm[31:36],
            right_eye,
            left_eye,
            lm[48:68],
            right_eye.mean(0, keepdims=True),
            left_eye.mean(0, keepdims=True),
        ]
    )
    assert out.shape == (98, 2)
    return out


def as_lapa106(lm: np.ndarray) -> np.ndarray:
    """LaPa / JD-106 layout: contour 0-32; brows 33-41 / 42-50; nose bridge 51-54; nose arc 55-65
    (left side 55-57, base 58-62 with the subnasale at 60, right side 63-65); right eye 66-73 and its
    centre 74; left eye 75-82 and its centre 83; mouth 84-103; pupils 104-105."""
    w = np.linalg.norm(lm[35] - lm[31])
    right_eye = eye8(lm, 36, (37, 38), 39, (40, 41))
    left_eye = eye8(lm, 42, (43, 44), 45, (46, 47))
    out = np.vstack(
        [
            resample(lm[0:17], 33),
            brow9(lm, range(17, 22)),
            brow9(lm, range(22, 27)),
            lm[27:31],
            resample([lm[28] + [-0.3 * w, 0], lm[31] + [-0.15 * w, -0.2 * w]], 3),
            lm[31:36],
            resample([lm[35] + [0.15 * w, -0.2 * w], lm[28] + [0.3 * w, 0]], 3),
            right_eye,
            right_eye.mean(0, keepdims=True),
            left_eye,
            left_eye.mean(0, keepdims=True),
            lm[48:68],
            right_eye.mean(0, keepdims=True),
            left_eye.mean(0, keepdims=True),
        ]
    )
    assert out.shape == (106, 2)
    return out


BUILDERS = {"wflw98": as_wflw98, "lapa106": as_lapa106}
EYES = list(range(36, 48))
NOT_EYES = [k for k in range(68) if k not in EYES]


def interocular(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[45] - lm[36]))


# ---------------------------------------------------------------------------
# 300-W .pts: 1-based, with or without the header


def test_pts_and_lapa_files_of_the_same_pixel_read_equal(tmp_path):
    pts = tmp_path / "a.pts"
    pts.write_text("version: 1\nn_points: 1\n{\n11.5 21.25\n}\n")
    lapa = tmp_path / "a.txt"
    lapa.write_text("106\n" + "10.5 20.25\n" * 106)
    np.testing.assert_array_equal(read_pts(pts)[0], read_lapa106(lapa)[0])


def test_pts_with_and_without_header_read_equal(tmp_path):
    rows = "".join(f"{x:.3f} {y:.3f}\n" for x, y in frontal_face68() + 1)
    header = tmp_path / "header.pts"
    header.write_text(f"version: 1\nn_points:  68\n{{\n{rows}}}\n")
    bare = tmp_path / "bare.pts"
    bare.write_text(rows)
    np.testing.assert_array_equal(read_pts(header), read_pts(bare))
    np.testing.assert_allclose(read_pts(bare), frontal_face68(), atol=1e-3)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"version: 1\nn_points: sixty\n{\n1 1\n}\n", "line 2: n_points is not an integer"),
        (b"version: 1\nn_points: 2\n{\n1 1\nnan 2\n}\n", "line 5: non-finite"),
        (b"\xff\xfe\x00\x01binary", "not UTF-8"),
    ],
    ids=["n_points_text", "nan_row", "binary"],
)
def test_malformed_pts_error_names_the_file_and_the_problem(tmp_path, content, problem):
    f = tmp_path / "broken_face.pts"
    f.write_bytes(content)
    with pytest.raises(ValueError) as e:
        read_pts(f)
    assert "broken_face.pts" in str(e.value) and problem in str(e.value)


# ---------------------------------------------------------------------------
# LaPa 106-point text


def test_lapa106_reads_the_count_line_and_zero_based_rows(tmp_path):
    face = as_lapa106(frontal_face68())
    f = tmp_path / "10001_lapa.txt"
    f.write_text("106\n" + "".join(f"{x:.6f} {y:.6f}\n" for x, y in face))
    got = read_lapa106(f)
    assert got.dtype == np.float32 and got.shape == (106, 2)
    np.testing.assert_allclose(got, face, atol=1e-4)


def test_lapa106_accepts_tabs_extra_spaces_and_trailing_blank_lines(tmp_path):
    f = tmp_path / "spaces.txt"
    f.write_text("106\r\n" + "".join(f"  {k}.5\t{k + 1} \r\n" for k in range(106)) + "\n\n")
    got = read_lapa106(f)
    np.testing.assert_array_equal(got[:, 0], np.arange(106) + 0.5)
    np.testing.assert_array_equal(got[:, 1], np.arange(106) + 1)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("106\n" + "1 2\n" * 105, "says 106 points but the file has 105"),
        ("68\n" + "1 2\n" * 68, "line 1: point count is 68, expected 106"),
        ("1.0 2.0\n" + "1 2\n" * 106, "line 1: expected the point count"),
        ("106\n" + "1 2\n" * 3 + "1 two\n" + "1 2\n" * 102, "line 5: non-numeric"),
        ("106\n" + "1 2 3\n" * 106, "line 2: expected two numbers"),
        ("", "empty file"),
    ],
    ids=["too_few_rows", "wrong_count", "no_count_line", "non_numeric", "three_columns", "empty"],
)
def test_malformed_lapa106_error_names_the_file_line_and_problem(tmp_path, text, problem):
    f = tmp_path / "bad_lapa.txt"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        read_lapa106(f)
    assert "bad_lapa.txt" in str(e.value) and problem in str(e.value)


# ---------------------------------------------------------------------------
# WFLW 98-point annotation lists


def wflw_line(points: np.ndarray, box=(120, 80, 310, 290), flags=(0, 1, 0, 0, 1, 0), image="x.jpg") -> str:
    coords = " ".join(f"{v:.6f}" for v in np.asarray(points).reshape(-1))
    return f"{coords} {' '.join(map(str, box))} {' '.join(map(str, flags))} {image}\n"


def test_wflw_reads_landmarks_box_attributes_and_image_per_line(tmp_path):
    a = as_wflw98(frontal_face68())
    b = a * 1.5 + 7.0
    f = tmp_path / "list_98pt_rect_attr_test.txt"
    f.write_text(
        wflw_line(a, (57, 60, 143, 158), (0, 1, 0, 0, 1, 0), "51--Dresses/51_Dresses_wearingdress_51_377.jpg")
        + "\n"
        + wflw_line(b, (93, 97, 222, 244), (1, 0, 1, 1, 0, 1), "0--Parade/0_Parade_marchingband_1_116.jpg")
    )
    records = read_wflw(f)
    assert [r.image for r in records] == [
        "51--Dresses/51_Dresses_wearingdress_51_377.jpg",
        "0--Parade/0_Parade_marchingband_1_116.jpg",
    ]
    assert records[0].landmarks.dtype == np.float32 and records[0].landmarks.shape == (98, 2)
    np.testing.assert_allclose(records[0].landmarks, a, atol=1e-4)
    np.testing.assert_allclose(records[1].landmarks, b, atol=1e-4)
    assert records[1].box == (93.0, 97.0, 222.0, 244.0)
    assert records[0].attributes == dict(zip(WFLW_ATTRIBUTES, (False, True, False, False, True, False), strict=True))
    assert list(records[1].attributes) == ["pose", "expression", "illumination", "make_up", "occlusion", "blur"]


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        (" ".join(["1.0"] * 195) + " 1 2 3 4 0 0 0 0 0 0 a.jpg\n", "expected 207 fields"),
        (" ".join(["1.0"] * 195) + " x 1 2 3 4 0 0 0 0 0 0 a.jpg\n", "non-numeric"),
        (" ".join(["1.0"] * 196) + " 1 2 3 4 0 0 2 0 0 0 a.jpg\n", "attribute flags must be 0 or 1"),
        (" ".join(["1.0"] * 196) + " 9 2 3 4 0 0 0 0 0 0 a.jpg\n", "x_max < x_min"),
    ],
    ids=["missing_coordinate", "non_numeric", "bad_flag", "inverted_box"],
)
def test_malformed_wflw_error_names_the_file_and_the_line(tmp_path, bad_line, problem):
    f = tmp_path / "bad_wflw.txt"
    f.write_text(wflw_line(as_wflw98(frontal_face68())) + "\n" + bad_line)
    with pytest.raises(ValueError) as e:
        read_wflw(f)
    assert "bad_wflw.txt" in str(e.value) and "line 3" in str(e.value) and problem in str(e.value)


def test_empty_wflw_file_is_an_error(tmp_path):
    f = tmp_path / "empty_wflw.txt"
    f.write_text("\n")
    with pytest.raises(ValueError, match="empty_wflw.txt.*no records"):
        read_wflw(f)


# ---------------------------------------------------------------------------
# COCO-style keypoint JSON


def coco_triples(points: np.ndarray, visibility) -> list[float]:
    return [float(v) for (x, y), vis in zip(points, visibility, strict=True) for v in (x, y, vis)]


def test_coco_keypoints_map_file_names_to_one_array_per_annotation_with_nan_for_unlabelled(tmp_path):
    body_a = np.array([[200 + 3 * k, 150 + 9 * k] for k in range(17)], float)
    body_b = body_a + 40
    vis_a = [2] * 17
    vis_b = [2, 2, 0, 1, 1] + [0] * 12
    doc = {
        "images": [
            {"id": 397133, "file_name": "000000397133.jpg", "width": 640, "height": 427},
            {"id": 37777, "file_name": "000000037777.jpg", "width": 352, "height": 230},
        ],
        "annotations": [
            {"id": 1, "image_id": 397133, "keypoints": coco_triples(body_a, vis_a), "num_keypoints": 17},
            {"id": 2, "image_id": 397133, "keypoints": coco_triples(body_b * 0, [0] * 17), "num_keypoints": 0},
            {"id": 3, "image_id": 397133, "keypoints": coco_triples(body_b, vis_b), "num_keypoints": 4},
        ],
    }
    f = tmp_path / "person_keypoints_val.json"
    f.write_text(json.dumps(doc))
    got = read_coco_keypoints(f)
    assert set(got) == {"000000397133.jpg", "000000037777.jpg"} and got["000000037777.jpg"] == []
    first, none, third = got["000000397133.jpg"]
    assert first.dtype == np.float32 and first.shape == (17, 2)
    np.testing.assert_array_equal(first, body_a)  # 0-based: no offset
    assert np.isnan(none).all()
    labelled = np.array(vis_b) > 0
    np.testing.assert_array_equal(third[labelled], body_b[labelled])
    assert np.isnan(third[~labelled]).all()


def coco_wholebody_doc(face: np.ndarray, face_vis) -> dict:
    body = np.array([[100 + k, 50 + 5 * k] for k in range(17)], float)
    return {
        "images": [{"id": 785, "file_name": "000000000785.jpg", "width": 640, "height": 425}],
        "annotations": [
            {
                "id": 442619,
                "image_id": 785,
                "keypoints": coco_triples(body, [2] * 17),
                "num_keypoints": 17,
                "face_box": [70.0, 60.0, 80.0, 90.0],
                "face_valid": True,
                "face_kpts": coco_triples(face, face_vis),
                "lefthand_valid": False,
                "lefthand_kpts": [0.0] * 63,
            }
        ],
    }


def test_coco_wholebody_face_kpts_are_taken_by_default_and_keypoints_on_request(tmp_path):
    face = frontal_face68()
    vis = [1] * 68
    vis[8] = 0
    f = tmp_path / "coco_wholebody_val_v1.0.json"
    f.write_text(json.dumps(coco_wholebody_doc(face, vis)))
    (got,) = read_coco_keypoints(f)["000000000785.jpg"]
    assert got.shape == (68, 2) and np.isnan(got[8]).all()
    np.testing.assert_allclose(np.delete(got, 8, axis=0), np.delete(face, 8, axis=0), atol=1e-4)
    assert read_coco_keypoints(f, field="keypoints")["000000000785.jpg"][0].shape == (17, 2)


def test_unlabelled_coco_face_point_stays_nan_in_ibug68_order(tmp_path):
    vis = [1] * 68
    vis[30] = 0
    f = tmp_path / "wb.json"
    f.write_text(json.dumps(coco_wholebody_doc(frontal_face68(), vis)))
    mapped = to_ibug68(read_coco_keypoints(f)["000000000785.jpg"][0])
    assert np.isnan(mapped[30]).all() and np.isfinite(np.delete(mapped, 30, axis=0)).all()


@pytest.mark.parametrize(
    "doc, problem",
    [
        ('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [', "invalid JSON at line 1"),
        ({"annotations": []}, '"images" list'),
        ({"images": [{"file_name": "a.jpg"}]}, 'images[0]: needs an "id"'),
        ({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]}, "duplicate image id 1"),
        (
            {
                "images": [{"id": 1, "file_name": "a.jpg"}],
                "annotations": [{"id": 9, "image_id": 2, "keypoints": [1, 1, 2]}],
            },
            "annotations[0] (id 9): image_id 2 is not in images",
        ),
        (
            {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "keypoints": [1, 1, 2, 3]}]},
            "x, y, v triples",
        ),
        (
            {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "keypoints": [1, "1", 2]}]},
            "non-numeric",
        ),
        (
            {
                "images": [{"id": 1, "file_name": "a.jpg"}],
                "annotations": [{"image_id": 1, "face_kpts": [1, 1, 1]}, {"image_id": 1}],
            },
            'annotations[1]: "face_kpts" must be',
        ),
    ],
    ids=[
        "invalid_json",
        "no_images",
        "image_without_id",
        "duplicate_id",
        "unknown_image",
        "not_triples",
        "non_numeric",
        "missing_field",
    ],
)
def test_malformed_coco_file_error_names_the_file_and_the_annotation(tmp_path, doc, problem):
    f = tmp_path / "bad_coco.json"
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ValueError) as e:
        read_coco_keypoints(f)
    assert "bad_coco.json" in str(e.value) and problem in str(e.value)


# ---------------------------------------------------------------------------
# index maps to iBUG 68


@pytest.mark.parametrize("scheme", ["wflw98", "lapa106"])
def test_map_round_trip_returns_the_68_points_the_layout_was_built_from(scheme):
    face = frontal_face68()
    back = to_ibug68(BUILDERS[scheme](face), scheme).astype(np.float64)
    err = np.linalg.norm(back - face, axis=1)
    # jaw, brows, nose and mouth are points of the 98/106 layouts themselves
    assert err[NOT_EYES].max() < 1e-3, np.flatnonzero(err > 1e-3)
    # eye lids: 1/4 and 3/4 of the lid stand for iBUG's 1/3 and 2/3
    assert err[EYES].max() < 0.05 * interocular(face)


@pytest.mark.parametrize("scheme", ["wflw98", "lapa106"])
def test_mapped_frontal_face_has_ibug_semantics(scheme):
    m = to_ibug68(BUILDERS[scheme](frontal_face68()), scheme)
    jaw, right_eye, left_eye = m[0:17], m[36:42], m[42:48]
    assert right_eye[:, 0].mean() < left_eye[:, 0].mean()  # subject's right eye on the image left
    assert m[17:22, 0].mean() < m[22:27, 0].mean()  # same for the brows
    assert m[17:27, 1].max() < m[36:48, 1].min()  # brows above the eyes
    assert m[36:48, 1].max() < m[31:36, 1].min()  # eyes above the nose base
    assert m[31:36, 1].max() < m[48:68, 1].min()  # mouth below the nose
    assert jaw[:, 0].min() < m[36, 0] and jaw[:, 0].max() > m[45, 0]  # jaw spans the face width
    assert int(np.argmax(jaw[:, 1])) == 8  # the chin is the lowest jaw point
    assert m[36, 0] < m[39, 0] < m[42, 0] < m[45, 0]  # eye corners: outer, inner, inner, outer
    assert m[48, 0] < m[51, 0] < m[54, 0] and m[51, 1] < m[57, 1]  # mouth corners and lip centres


def test_maps_have_68_entries_inside_their_source_layout():
    for index_map, n in ((WFLW98_TO_68, 98), (LAPA106_TO_68, 106)):
        flat = [i for e in index_map for i in ((e,) if isinstance(e, int) else e)]
        assert len(index_map) == 68 and len(set(flat)) == len(flat) and 0 <= min(flat) and max(flat) < n


def test_to_ibug68_infers_the_scheme_from_the_point_count():
    face = frontal_face68()
    for scheme, build in BUILDERS.items():
        pts = build(face)
        assert infer_scheme(len(pts)) == scheme
        np.testing.assert_array_equal(to_ibug68(pts), to_ibug68(pts, scheme))
    np.testing.assert_array_equal(to_ibug68(face), face.astype(np.float32))


@pytest.mark.parametrize(
    "n, scheme, problem",
    [(98, "lapa106", "has 106 points, got 98"), (70, "auto", "cannot infer"), (68, "dlib5", "unknown landmark scheme")],
)
def test_to_ibug68_rejects_a_count_that_does_not_fit_the_scheme(n, scheme, problem):
    with pytest.raises(ValueError, match=problem):
        to_ibug68(np.zeros((n, 2)), scheme)


def test_apply_index_map_averages_tuple_entries_like_a_float64_mean():
    pts = np.random.default_rng(3).random((10, 2)) * 100
    index_map = (4, (0, 1), (2, 7, 9))
    expected = np.array([pts[4], (pts[0] + pts[1]) / 2, (pts[2] + pts[7] + pts[9]) / 3])
    got = apply_index_map(pts.astype(np.float32), index_map)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        apply_index_map(pts, (0, (1, 10)))


# ---------------------------------------------------------------------------
# read_landmarks: one entry point


def test_read_landmarks_gives_ibug68_from_pts_and_lapa_txt(tmp_path):
    face = frontal_face68()
    pts = tmp_path / "face.pts"
    pts.write_text("version: 1\nn_points: 68\n{\n" + "".join(f"{x + 1:.4f} {y + 1:.4f}\n" for x, y in face) + "}\n")
    lapa = tmp_path / "face.txt"
    lapa.write_text("106\n" + "".join(f"{x:.4f} {y:.4f}\n" for x, y in as_lapa106(face)))
    np.testing.assert_array_equal(read_landmarks(pts), read_pts(pts))
    from_lapa = read_landmarks(lapa)
    assert from_lapa.shape == (68, 2)
    np.testing.assert_array_equal(from_lapa, to_ibug68(read_lapa106(lapa), "lapa106"))


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("many.json", '{"images": []}', "read_coco_keypoints"),
        ("list_98pt.txt", " ".join(["1"] * 196) + " 1 2 3 4 0 0 0 0 0 0 a.jpg\n", "read_wflw"),
        ("rows.txt", "1 2\n3 4\n", "unrecognised landmark file"),
        ("five.txt", "5\n" + "1 2\n" * 5, "cannot infer a landmark scheme from 5 points"),
    ],
    ids=["coco_json", "wflw_list", "bare_rows_txt", "unknown_count"],
)
def test_read_landmarks_refuses_files_it_cannot_turn_into_one_face(tmp_path, name, text, problem):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        read_landmarks(f)
    assert name in str(e.value) and problem in str(e.value)


def test_read_landmarks_checks_an_explicit_scheme_against_the_file(tmp_path):
    f = tmp_path / "face.pts"
    f.write_text("version: 1\nn_points: 68\n{\n" + "1 1\n" * 68 + "}\n")
    with pytest.raises(ValueError, match="face.pts.*has 98 points, got 68"):
        read_landmarks(f, scheme="wflw98")


# ---------------------------------------------------------------------------
# real data: HELEN 300-W annotations


def helen_pts(n: int = 5) -> list:
    return sorted(real_data("helen", "testset").glob("*.pts"))[:n]


def test_real_helen_pts_give_68_points_inside_the_image():
    from PIL import Image

    files = helen_pts()
    assert files
    for f in files:
        lm = read_landmarks(f)
        with Image.open(f.with_suffix(".jpg")) as im:  # reads the header only
            w, h = im.size
        assert lm.shape == (68, 2) and np.isfinite(lm).all(), f
        assert (lm[:, 0] >= -0.5).all() and (lm[:, 0] <= w - 0.5).all(), f
        assert (lm[:, 1] >= -0.5).all() and (lm[:, 1] <= h - 0.5).all(), f
        np.testing.assert_array_equal(lm, read_pts(f))


@pytest.mark.parametrize("scheme", ["wflw98", "lapa106"])
def test_map_round_trip_on_real_helen_faces(scheme):
    for f in helen_pts():
        face = read_pts(f).astype(np.float64)
        back = to_ibug68(BUILDERS[scheme](face), scheme).astype(np.float64)
        err = np.linalg.norm(back - face, axis=1)
        assert err[NOT_EYES].max() < 1e-3, f
        assert err[EYES].max() < 0.05 * interocular(face), f
