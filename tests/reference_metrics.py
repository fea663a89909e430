"""Slow, obvious float64 references of the explainability metrics (docs/method.md §7), written from the definitions.

Plain Python loops over pixels, images and channels on lists of floats; no code shared with the package,
so the fast, vectorised versions can be checked against them.
"""

from __future__ import annotations

import math


def source_index(j: int, n_in: int, n_out: int) -> tuple[int, int, float]:
    """Bilinear source pixels and weight of output j (align_corners=False, as torch's F.interpolate)."""
    scale = n_in / n_out
    src = scale * (j + 0.5) - 0.5
    if src < 0:
        src = 0.0
    i0 = int(math.floor(src))
    if i0 > n_in - 1:
        i0 = n_in - 1
    i1 = i0 + 1 if i0 < n_in - 1 else i0
    return i0, i1, src - i0


def upsample(m: list[list[float]], s: int, s2: int) -> list[list[float]]:
    """Bilinear upsampling of one h x w map to s x s2, pixel by pixel: a linear interpolation a + l * (b - a)
    between two source rows, then one between two columns of that result, in float64.

    This order of operations is part of the definition (the package uses the same): two pixels that are
    equal in exact arithmetic (mirror images around a lone source pixel, say) can round apart, and at the
    threshold the rounding then decides which of them the top mask keeps.
    """
    h, w = len(m), len(m[0])
    out = []
    for i in range(s):
        a0, a1, ly = source_index(i, h, s)
        row = [m[a0][c] + ly * (m[a1][c] - m[a0][c]) for c in range(w)]
        out_row = []
        for j in range(s2):
            b0, b1, lx = source_index(j, w, s2)
            out_row.append(row[b0] + lx * (row[b1] - row[b0]))
        out.append(out_row)
    return out


def top_mask(m: list[list[float]], s: int, s2: int, fraction: float = 0.1) -> list[list[bool]]:
    """Top-fraction mask: t = the k-th largest upsampled value, k = ceil(fraction * s * s2); x >= t and x > 0."""
    up = upsample(m, s, s2)
    values = sorted((v for row in up for v in row), reverse=True)
    k = max(1, math.ceil(fraction * s * s2))
    t = values[k - 1]
    return [[v >= t and v > 0 for v in row] for row in up]


def iou(mask: list[list[bool]], part: list[list[bool]]) -> float:
    """|mask & part| / |mask | part|, 0 when both are empty."""
    inter = union = 0
    for mrow, prow in zip(mask, part):
        for a, b in zip(mrow, prow):
            inter += a and b
            union += a or b
    return inter / union if union else 0.0


def part_ious(maps, parts, fraction: float = 0.1) -> list[list[list[float]]]:
    """IoU [image][channel][part] of nested lists: maps [N][C][h][w], parts [N][K][S][S'] (bools)."""
    out = []
    for img_maps, img_parts in zip(maps, parts):
        s, s2 = len(img_parts[0]), len(img_parts[0][0])
        rows = []
        for m in img_maps:
            mask = top_mask(m, s, s2, fraction)
            rows.append([iou(mask, p) for p in img_parts])
        out.append(rows)
    return out


def pe_per_image(ious) -> list[float]:
    """PE_I = mean over channels of the best part's IoU."""
    return [sum(max(ch) for ch in img) / len(img) for img in ious]


def location_consistency(ious) -> tuple[float, int, list[float | None]]:
    """LS, number of channels counted at least once, S_i per channel (None if never counted).

    An image counts for a channel when the best IoU is > 0 (non-empty mask touching a part); ties go to
    the first part.
    """
    n_ch, n_parts = len(ious[0]), len(ious[0][0])
    per_channel: list[float | None] = []
    for c in range(n_ch):
        hits = [0] * n_parts
        used = 0
        for img in ious:
            row = img[c]
            best = max(row)
            if best > 0:
                hits[row.index(best)] += 1
                used += 1
        if used == 0:
            per_channel.append(None)
            continue
        a = [hit / used for hit in hits]
        per_channel.append(math.sqrt(sum((ak - 1 / n_parts) ** 2 for ak in a)) / n_parts)
    counted = [s for s in per_channel if s is not None]
    ls = sum(counted) / len(counted) if counted else float("nan")
    return ls, len(counted), per_channel


def channel_overlap(maps, s: int, s2: int, fraction: float = 0.1) -> list[float]:
    """Per image: the mean over channel pairs i < j of IoU(top mask i, top mask j); two empty masks give 0."""
    out = []
    for image in maps:
        masks = [top_mask(m, s, s2, fraction) for m in image]
        values = []
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                inter = sum(a and b for ra, rb in zip(masks[i], masks[j]) for a, b in zip(ra, rb))
                union = sum(a or b for ra, rb in zip(masks[i], masks[j]) for a, b in zip(ra, rb))
                values.append(inter / union if union else 0.0)
        out.append(sum(values) / len(values))
    return out


def _neighbours(p: int, h: int, w: int):
    i, j = divmod(p, w)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if (di or dj) and 0 <= i + di < h and 0 <= j + dj < w:
                yield (i + di) * w + j + dj


def count_peaks(m: list[list[float]], rho: float = 0.1) -> int:
    """Peaks by superlevel-set persistence: a plain union-find over pixels from high to low (elder rule).

    Only pixels > 0 enter (negative values count as 0); ties go to the lower flat index; a component that
    never merges keeps prominence = its height. A peak counts when prominence >= rho * max.
    """
    h, w = len(m), len(m[0])
    vals = [max(float(v), 0.0) for row in m for v in row]
    order = sorted(range(h * w), key=lambda p: (-vals[p], p))
    position = {p: r for r, p in enumerate(order)}
    parent = list(range(h * w))
    entered = [False] * (h * w)
    prominence: dict[int, float] = {}

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for p in order:
        level = vals[p]
        if level <= 0:
            break
        roots = {find(q) for q in _neighbours(p, h, w) if entered[q]}
        entered[p] = True
        if not roots:
            prominence[p] = level  # born; stays so if it never dies
            continue
        elder = min(roots, key=lambda r: position[r])
        for r in roots:
            if r != elder:
                prominence[r] = vals[r] - level
                parent[r] = elder
        parent[p] = elder
    top = max(vals)
    return sum(1 for pr in prominence.values() if pr >= rho * top)


def count_peaks_brute(m: list[list[float]], rho: float = 0.1) -> int:
    """Peaks by brute force: for each local maximum (in the order value, then lower index), prominence =
    height - the highest level L > 0 at which a flood fill of {x >= L} from it reaches a higher pixel
    (height itself if it never does). For tiny maps.
    """
    h, w = len(m), len(m[0])
    vals = [max(float(v), 0.0) for row in m for v in row]

    def higher(a: int, b: int) -> bool:
        return vals[a] > vals[b] or (vals[a] == vals[b] and a < b)

    levels = sorted({v for v in vals if v > 0}, reverse=True)
    top = max(vals)
    count = 0
    for p in range(h * w):
        if vals[p] <= 0 or any(higher(q, p) for q in _neighbours(p, h, w)):
            continue
        saddle = 0.0
        for level in levels:
            if level > vals[p]:
                continue
            seen, stack, found = {p}, [p], False
            while stack and not found:
                a = stack.pop()
                for q in _neighbours(a, h, w):
                    if q not in seen and vals[q] >= level:
                        if higher(q, p):
                            found = True
                            break
                        seen.add(q)
                        stack.append(q)
            if found:
                saddle = level
                break
        if vals[p] - saddle >= rho * top:
            count += 1
    return count
