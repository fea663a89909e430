"""Face-part labels shared by the synthetic faces, the part masks and the metrics (docs/method.md §6).

Seven parts K = {hair, forehead, cheek, eyes, nose, mouth, jaw} plus background.
A part-label map is a uint8 image whose values index `PART_NAMES`. Where parts
overlap, priority is eyes > nose > mouth > jaw > forehead > cheek > hair (the paint order below).
"""

from __future__ import annotations

PART_NAMES: tuple[str, ...] = ("background", "hair", "forehead", "cheek", "eyes", "nose", "mouth", "jaw")
PART_INDEX: dict[str, int] = {name: i for i, name in enumerate(PART_NAMES)}

#: Paint order for label maps: later entries overwrite earlier ones (lowest priority first).
#: Cheek is "the rest of the face polygon" (docs/method.md §6.3), so it is painted as the face's base
#: layer right after hair, and the forehead band (which the cheek mask includes) is painted over it.
PAINT_ORDER: tuple[str, ...] = ("hair", "cheek", "forehead", "jaw", "mouth", "nose", "eyes")

#: Colours (RGB) for drawing label maps.
PART_COLORS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 0),
    "hair": (140, 86, 75),
    "forehead": (255, 187, 120),
    "cheek": (152, 223, 138),
    "eyes": (31, 119, 180),
    "nose": (214, 39, 40),
    "mouth": (227, 119, 194),
    "jaw": (188, 189, 34),
}

#: iBUG 68-point groups (0-based; the first of each left/right pair is the subject's right side).
LANDMARK_GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),
    "left_brow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_base": range(31, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lips": range(48, 60),
    "inner_lips": range(60, 68),
}
