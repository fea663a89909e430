"""Safe writes: the resumable record log of long runs."""

from __future__ import annotations

import pytest


def test_a_resumable_log_continues_drops_only_a_cut_last_line_and_refuses_damage_or_other_settings(tmp_path):
    import json

    from explainface.files import ResumableLog

    path = tmp_path / "log.jsonl"
    log = ResumableLog(path, {"seed": 0})
    for k in range(3):
        log.add(k, {"value": k * 1.5})
    again = ResumableLog(path, {"seed": 0})
    assert again.done == {0: {"value": 0.0}, 1: {"value": 1.5}, 2: {"value": 3.0}}
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:7])  # killed while writing item 2
    cut = ResumableLog(path, {"seed": 0})
    assert set(cut.done) == {0, 1} and path.read_text().count("\n") == 3  # the cut line dropped, appends parse
    cut.add(2, {"value": 3.0})
    assert ResumableLog(path, {"seed": 0}).done == again.done
    with pytest.raises(ValueError, match=r"other settings \(seed\)"):
        ResumableLog(path, {"seed": 1})
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")  # damage inside the log: never truncated
    with pytest.raises(ValueError, match="line 2 is not a record"):
        ResumableLog(path, {"seed": 0})
    assert path.read_text().count("\n") == 5
    old = tmp_path / "old.jsonl"  # the first ground-truth logs' field names
    old.write_text(json.dumps({"settings": {}}) + "\n" + json.dumps({"pair": 7, "records": {"a": 1}}) + "\n")
    assert ResumableLog(old, {}).done == {7: {"a": 1}}
    assert ResumableLog(None, {}).done == {}
