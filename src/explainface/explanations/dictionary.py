"""The channel dictionary as a file: read once, checked against the network it is applied to.

`explain` writes the dictionary (channel -> dominant part, with its frequency) into ``explainability.json``
(which also records the model and the layer it was measured at) and as ``channel_dictionary.json`` (the bare
list). Every command that takes one (`why`, `why --pairs`, the ground-truth protocols, `visualize`, the report)
reads it here and checks it against the network before use: every channel an integer in the layer's range, no
channel listed twice, parts that are face parts, and, where the file records it, the same layer, and as many
channels as the layer has. A dictionary of another network or layer is one clear error naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from explainface.files import regular_file
from explainface.parts.labels import PART_NAMES


@dataclass
class ChannelDictionary:
    path: Path
    entries: list[dict]  # {"channel": int, "part": str | None, ...} as the file holds them
    layer: str | None  # the layer it was measured at (explainability.json), else None
    channels: int | None  # the layer's channel count, where the file says (explainability.json: all channels)

    def parts(self) -> dict[int, str | None]:
        return {int(e["channel"]): e.get("part") for e in self.entries}

    def check(self, channels: int, layer: str | None = None) -> ChannelDictionary:
        """Raise ValueError (naming the file) unless it fits a layer `layer` with `channels` channels."""
        if layer is not None and self.layer is not None and self.layer != layer:
            raise ValueError(f"{self.path}: a dictionary of layer {self.layer!r}; this network's layer is {layer!r} "
                             f"(run `explain` on it, or give --layer {self.layer})")  # fmt: skip
        if self.channels is not None and self.channels != channels:
            raise ValueError(f"{self.path}: a dictionary of a {self.channels}-channel layer; this network's layer "
                             f"{layer or ''} has {channels} channels (it comes from another network)")  # fmt: skip
        bad = sorted(int(e["channel"]) for e in self.entries if not 0 <= int(e["channel"]) < channels)
        if bad:
            raise ValueError(f"{self.path}: channel(s) {', '.join(map(str, bad[:5]))} outside this network's "
                             f"{channels} channels (0..{channels - 1}): a dictionary of another network")  # fmt: skip
        return self


def read_dictionary(path: str | Path, frequency: bool = False) -> ChannelDictionary:
    """The channel dictionary of an `explainability.json` or a `channel_dictionary.json` list; ValueError naming
    the file and the problem for anything else (`frequency`: every entry must carry one, as figures need)."""
    path = regular_file(path, "channel dictionary")  # missing, a FIFO, a folder: named, never opened
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read the channel dictionary ({e.strerror or e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    layer = data.get("layer") if isinstance(data, dict) else None
    entries = data.get("channels") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{path}: no channel list (expected explainability.json with a 'channels' list)")
    seen: set[int] = set()
    parts = set(PART_NAMES[1:])
    for i, e in enumerate(entries):
        c = e.get("channel") if isinstance(e, dict) else None
        if not isinstance(c, int) or isinstance(c, bool):
            raise ValueError(f"{path}: channel entry {i} is not {{channel: int, part, ...}}: {e!r:.80}")
        if c < 0:
            raise ValueError(f"{path}: channel entry {i} has a negative channel ({c})")
        if c in seen:
            raise ValueError(f"{path}: channel {c} is listed twice")
        seen.add(c)
        if "part" not in e or (e["part"] is not None and e["part"] not in parts):
            raise ValueError(f"{path}: channel {c}: part {e.get('part')!r} is not one of {', '.join(sorted(parts))}")
        if frequency and "frequency" not in e:  # (None for a channel that never fired)
            raise ValueError(f"{path}: channel entry {i} is not {{channel: int, part, frequency}}: {e!r:.80}")
    whole = seen == set(range(len(entries)))  # explain lists every channel of the layer it measured
    return ChannelDictionary(path, entries, layer if isinstance(layer, str) else None, len(entries) if whole else None)
