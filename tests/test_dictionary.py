"""The channel dictionary file: read once, checked against the network it is applied to (issue 26)."""

from __future__ import annotations

import json

import pytest

from explainface.explanations.dictionary import read_dictionary


def _write(tmp_path, data, name="explainability.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _entries(n, part="eyes"):
    return [{"channel": c, "part": part, "frequency": 0.5} for c in range(n)]


@pytest.mark.parametrize(
    ("channels", "problem"),
    [
        ([{"channel": -1, "part": "eyes"}], "negative channel"),
        ([{"channel": "3", "part": "eyes"}], "entry 0 is not"),
        ([{"channel": 2.0, "part": "eyes"}], "entry 0 is not"),
        ([{"channel": True, "part": "eyes"}], "entry 0 is not"),
        ([{"channel": 1, "part": "eyes"}, {"channel": 1, "part": "nose"}], "channel 1 is listed twice"),
        ([{"channel": 0, "part": "ears"}], "part 'ears' is not one of"),
        ([{"channel": 0}], "part None is not one of"),
    ],
)
def test_a_malformed_entry_is_named_with_the_file(tmp_path, channels, problem):
    path = _write(tmp_path, {"channels": channels, "layer": "relu4_3"})
    with pytest.raises(ValueError, match=problem) as e:
        read_dictionary(path)
    assert str(path) in str(e.value)


def test_a_dictionary_of_another_network_or_layer_is_refused_before_use(tmp_path):
    d = read_dictionary(_write(tmp_path, {"channels": _entries(32), "layer": "relu4_3"}))
    assert d.channels == 32 and d.layer == "relu4_3" and d.parts()[5] == "eyes"
    assert d.check(32, "relu4_3") is d
    with pytest.raises(ValueError, match="a dictionary of a 32-channel layer; this network's layer relu4_3 has 128"):
        d.check(128, "relu4_3")
    with pytest.raises(ValueError, match="a dictionary of layer 'relu4_3'; this network's layer is 'relu5_3'"):
        d.check(32, "relu5_3")
    some = [{"channel": 3, "part": None}, {"channel": 40, "part": "nose"}]
    partial = read_dictionary(_write(tmp_path, some, "d.json"))
    assert partial.channels is None and partial.layer is None  # a list of some channels: only their range is known
    assert partial.check(64).parts() == {3: None, 40: "nose"}
    with pytest.raises(ValueError, match=r"channel\(s\) 40 outside this network's 32 channels"):
        partial.check(32)
    with pytest.raises(ValueError, match="entry 1 is not {channel: int, part, frequency}"):
        read_dictionary(_write(tmp_path, [{"channel": 0, "part": None, "frequency": 1}, {"channel": 1, "part": None}],
                               "f.json"), frequency=True)  # fmt: skip


def test_thresholds_are_finite_cosines_and_a_verification_file_must_hold_some(tmp_path):
    from explainface.explanations.why_pipeline import check_threshold, threshold_from

    assert check_threshold(None) is None and check_threshold(0.25) == 0.25
    for bad in (2, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--threshold: a threshold on the cosine is a finite number in"):
            check_threshold(bad)
    empty = _write(tmp_path, {"thresholds": []}, "verification.json")
    with pytest.raises(ValueError, match="verification.json: its 'thresholds' list is empty"):
        threshold_from(empty)
    odd = _write(tmp_path, {"thresholds": ["x"]}, "v2.json")
    with pytest.raises(ValueError, match="v2.json: not a verification.json"):
        threshold_from(odd)
    assert threshold_from(_write(tmp_path, {"thresholds": [0.2, 0.4]}, "v3.json")) == pytest.approx(0.3)
    xcos = _write(tmp_path, {"thresholds": [0.2], "score": "xcos", "model": "a.safetensors"}, "v4.json")
    with pytest.raises(ValueError, match="v4.json: thresholds of the 'xcos' score; `why` decides on the cosine"):
        threshold_from(xcos)
    other = _write(tmp_path, {"thresholds": [0.2], "score": "cosine", "model": "softmax.safetensors"}, "v5.json")
    with pytest.raises(ValueError, match="v5.json: a verify result of softmax.safetensors, not of ecloss.safetensors"):
        threshold_from(other, "ecloss.safetensors")
    assert threshold_from(other, "softmax.safetensors") == pytest.approx(0.2)


def test_landmarks_of_another_image_size_are_refused_not_scored(tmp_path):
    """Issue 26: 112-px landmarks beside a large photo put the face parts on a few pixels of the crop."""
    import cv2

    from explainface.parts.samples import face_sample
    from explainface.readers.landmarks import write_pts
    from explainface.synthetic.generator import SyntheticFaces

    s = SyntheticFaces(0, "easy").sample(3, 0, 112)
    big = cv2.resize(s.image, (1120, 1120), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    write_pts(tmp_path / "face.pts", s.landmarks)  # the 112-px points
    with pytest.raises(ValueError, match=r"face.png: its pts labels cover 0\.\d+% of the 112-px crop .* this "
                                         r"1120x1120 image\?"):  # fmt: skip
        face_sample(tmp_path / "face.png", 112, "none")
    write_pts(tmp_path / "face.pts", s.landmarks * 10 + 4.5)  # the same points at the photo's size
    assert face_sample(tmp_path / "face.png", 112, "none").labels.any()


def test_a_fifo_where_a_file_is_read_is_named_at_once_never_opened(tmp_path):
    """Issue 26: a FIFO named like an image, a dictionary, a verification result or a pair file used to block."""
    import os

    from explainface.explanations.why_pipeline import threshold_from
    from explainface.readers.images import load_image_rgb
    from explainface.readers.pairs import read_pairs

    for name, read in (("x.jpg", load_image_rgb), ("dict.json", read_dictionary), ("ver.json", threshold_from),
                       ("pairs.txt", read_pairs)):  # fmt: skip
        fifo = tmp_path / name
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match=f"{name}: a FIFO, not a"):
            read(fifo)
    with pytest.raises(FileNotFoundError, match="pair file not found"):
        read_pairs(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="channel dictionary not found"):
        read_dictionary(tmp_path / "missing.json")


def test_a_one_pair_faithfulness_table_shows_no_standard_error():
    from explainface.explanations.why_pipeline import faithfulness_table

    one = {"mean": 0.1, "se": None, "n": 1, "same": {"mean": 0.1}, "different": {"mean": None}}
    two = {"mean": 0.2, "se": 0.05, "n": 2, "same": {"mean": 0.2}, "different": {"mean": None}}
    text = faithfulness_table({"pairs": {"used": 1}, "scores": {"channels": {"channels": one, "random": two}}})
    assert "channels 0.1000;" in text
    assert "+- 0.0000" not in text and "random 0.2000 +- 0.0500" in text


def test_a_fifo_named_like_an_image_is_counted_as_skipped_not_left_out(tmp_path):
    """Issue 26: a FIFO `b.jpg` beside a face used to vanish from the counts of explain, crop and parts."""
    import os

    import cv2

    from explainface.faces.crop import crop_folder
    from explainface.parts.samples import SampleCounts, folder_samples
    from explainface.readers.folders import scan_identity_folders
    from explainface.readers.images import find_images
    from explainface.readers.landmarks import write_pts
    from explainface.synthetic import SyntheticFaces

    person = tmp_path / "faces" / "person"
    person.mkdir(parents=True)
    face = SyntheticFaces(seed=0).sample(0, 0, size=112)
    cv2.imwrite(str(person / "a.jpg"), cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR))
    write_pts(person / "a.pts", face.landmarks)
    os.mkfifo(person / "b.jpg")
    assert [p.name for p in find_images(tmp_path / "faces")] == ["a.jpg", "b.jpg"]
    assert [i for i, _ in scan_identity_folders(tmp_path / "faces").items] == ["person/a.jpg", "person/b.jpg"]
    counts = SampleCounts()
    used = list(folder_samples(tmp_path / "faces", 112, crop="none", counts=counts, progress=False))
    assert len(used) == 1 and list(counts.skipped) == ["person/b.jpg"] and "FIFO" in counts.skipped["person/b.jpg"]
    report = crop_folder(tmp_path / "faces", tmp_path / "crops", size=112, progress=False)
    assert report.unreadable == 1 and "FIFO" in next(iter(report.unreadable_reasons.values()))
