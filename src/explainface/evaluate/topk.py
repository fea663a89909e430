"""The exact top-k kernel of the explainability metrics: each map's top-10% mask of its bilinear upsampling, and
its overlap with part masks, without a full-resolution pass per map (`top_masks`, `top_part_overlap`).

Upsampled values are float64 and defined by one formula: a linear interpolation a + l * (b - a) between two
source rows, then one between two columns of that (bilinear, align_corners=False). `top_masks` and
`part_iou` use exactly these numbers, so they agree to the pixel; pixels that are equal in exact arithmetic
but round apart are ordered by the rounding (tests/reference_metrics.py uses the same formula).

How the part IoUs stay fast (100 images x 512 channels at 224 in seconds, with no 224 x 224 pass per map):
along an output row the bilinear map is monotone between two source columns, so each row is cut into such
pieces (about S / w pixels), bounded by their first and last pixel. The top-k threshold t is guessed from a
coarse sub-grid, the guess refined from the pieces' ends, and checked exactly: pieces wholly above or below
the bracket are counted whole (classified in float32 with a safe margin), only the pieces that straddle it
are evaluated pixel by pixel, and t is selected among the few pixels inside it (an always-valid wider bracket
takes over when the check fails). A piece's overlap with each part is then a prefix or suffix count of that
part along the row.

One idea (the exact threshold and counts from monotone pieces), kept in one module although it is over 500 lines:
its helpers share the piece layout and are tested only through `top_masks` and `top_part_overlap` against the
float64 reference.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from explainface.evaluate.peaks import metric_threads
from explainface.models.maps import size2

#: The share of the upsampled map that its top mask keeps (paper §3.3: "top 10%").
TOP_FRACTION = 0.1

_TINY = 5e-324  # the smallest positive float64: for float64 v, "v >= _TINY" is "v > 0"
_MARGIN = 0.025  # bracket half-width around the sub-grid estimate of t, as a share of the pixels
_REFINE_MARGIN = 100.0  # pixels of slack around the refined estimate of t
_REFINE_STEPS = 3  # Illinois steps of `_refine`
_BINS = 256  # histogram bins: of the sub-grid (the first guess), of the bracket (down to a few candidates)


# ----------------------------------------------------------------------------------------------------------
# bilinear geometry


@dataclass(frozen=True)
class _Axis:
    """Bilinear sampling along one axis (align_corners=False, as F.interpolate), cut into monotone pieces.

    Output j reads source b0[j], b1[j] with weight lam[j] on b1. A piece is a run of outputs with the same
    (b0, b1), the clamped border (lam 0) apart, at most ceil(n_out / n_in) long: lam is constant or evenly
    spaced along it. `piece_lam` is NaN-padded to `span`, a multiple of 8 (NaN compares false, so padding
    never counts; bool rows of a multiple of 8 are counted as int64 words).
    """

    b0: torch.Tensor  # [n_out] int64
    b1: torch.Tensor
    lam: torch.Tensor  # [n_out] float64
    piece_b0: torch.Tensor  # [P]
    piece_b1: torch.Tensor
    piece_len: torch.Tensor  # [P] int64
    piece_lam: torch.Tensor  # [P, span] float64, NaN-padded
    piece_out: torch.Tensor  # [P, span] output index, padded with the piece's last index
    piece_valid: torch.Tensor  # [P, span] bool
    piece_of: torch.Tensor  # [n_out] the piece of each output
    sub: torch.Tensor  # output indices of the coarse sub-grid used to bracket t

    @property
    def span(self) -> int:
        return self.piece_lam.shape[1]

    @property
    def lam_first(self) -> torch.Tensor:
        return self.piece_lam[:, 0]

    @property
    def lam_last(self) -> torch.Tensor:
        return self.piece_lam.gather(1, (self.piece_len - 1)[:, None]).squeeze(1)


@functools.lru_cache(maxsize=32)
def _axis(n_in: int, n_out: int) -> _Axis:
    scale = n_in / n_out
    b0, b1, lam, clamped = [], [], [], []
    for j in range(n_out):
        src = (j + 0.5) * scale - 0.5
        clamped.append(src < 0)
        src = max(src, 0.0)
        i0 = min(int(src), n_in - 1)
        b0.append(i0)
        b1.append(i0 + 1 if i0 < n_in - 1 else i0)
        lam.append(src - i0)
    span = max(1, math.ceil(n_out / n_in))
    width = 8 * math.ceil(span / 8)
    # pieces: runs of one (b0, b1), the clamped border apart, so that lam is constant or evenly spaced in each
    pieces, start = [], 0
    for j in range(1, n_out + 1):
        same = j < n_out and (b0[j], b1[j], clamped[j]) == (b0[start], b1[start], clamped[start])
        if not same or j - start == span:
            pieces.append((start, j))
            start = j
    n_p = len(pieces)
    piece_lam = torch.full((n_p, width), math.nan, dtype=torch.float64)
    piece_out = torch.zeros(n_p, width, dtype=torch.int64)
    for p, (s, e) in enumerate(pieces):
        piece_lam[p, : e - s] = torch.tensor(lam[s:e], dtype=torch.float64)
        piece_out[p] = torch.tensor(list(range(s, e)) + [e - 1] * (width - (e - s)))
    starts = torch.tensor([s for s, _ in pieces])
    half = max(1, span // 2)
    return _Axis(
        b0=torch.tensor(b0),
        b1=torch.tensor(b1),
        lam=torch.tensor(lam, dtype=torch.float64),
        piece_b0=torch.tensor(b0)[starts],
        piece_b1=torch.tensor(b1)[starts],
        piece_len=torch.tensor([e - s for s, e in pieces]),
        piece_lam=piece_lam,
        piece_out=piece_out,
        piece_valid=~piece_lam.isnan(),
        piece_of=torch.repeat_interleave(torch.arange(n_p), torch.tensor([e - s for s, e in pieces])),
        sub=torch.arange(half // 2, n_out, half),
    )


def _rows(x: torch.Tensor, b0: torch.Tensor, b1: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Upsample along rows at output rows with sources b0, b1 and weights lam: `[m, h, w]` -> `[m, S, w]`.

    The first half of the one bilinear formula (float64): every upsampled value in this module is
    `_cols(_rows(x))` of the same numbers, whichever rows and columns are asked for.
    """
    x0 = x.index_select(1, b0)
    return x0 + lam[:, None] * (x.index_select(1, b1) - x0)


def _cols(y: torch.Tensor, b0: torch.Tensor, b1: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Upsample along columns at output columns with sources b0, b1 and weights lam (the second half)."""
    y0 = y.index_select(-1, b0)
    return y0 + lam * (y.index_select(-1, b1) - y0)


def _upsample64(x: torch.Tensor, ay: _Axis, ax: _Axis) -> torch.Tensor:
    """The full float64 upsampled maps `[m, S, S']`, bit-identical to the values the piece path evaluates."""
    return _cols(_rows(x, ay.b0, ay.b1, ay.lam), ax.b0, ax.b1, ax.lam)


# ----------------------------------------------------------------------------------------------------------
# the top-k threshold and the mask's overlap with the parts, per map


@dataclass(frozen=True)
class _PartPieces:
    """One image's part masks cut into the row pieces: per piece, the part pixels among its first c pixels
    (`runs` rows [0, R)) and among its last c pixels (rows [R, 2R)), R = S * P * (span + 1), as uint8 counts
    padded to 8 parts so that a row is one int64 word per 8 parts; and per whole piece (`full`)."""

    runs: torch.Tensor  # [2 * S * P * (span + 1), ceil(K / 8)] int64 words of uint8 counts
    full: torch.Tensor  # [S * P, K] float32
    count: torch.Tensor  # [K] float64: part areas

    @property
    def parts(self) -> int:
        return self.full.shape[1]


def _part_pieces(parts: torch.Tensor, ax: _Axis) -> _PartPieces:
    k, s, _ = parts.shape
    p, span = ax.piece_out.shape
    cut = parts[:, :, ax.piece_out.reshape(-1)].reshape(k, s, p, span) & ax.piece_valid
    prefix = torch.zeros(k, s, p, span + 1, dtype=torch.int64)
    prefix[..., 1:] = cut.cumsum(-1)
    whole = prefix[..., span : span + 1]
    c = torch.arange(span + 1)
    back = (ax.piece_len[:, None] - c).clamp_min(0)  # [P, span + 1]: suffix of c pixels starts at len - c
    suffix = whole - prefix.gather(3, back.expand(k, s, p, span + 1))
    k8 = 8 * math.ceil(k / 8)
    runs = torch.zeros(2, s, p, span + 1, k8, dtype=torch.uint8)
    runs[..., :k] = torch.stack([prefix, suffix]).permute(0, 2, 3, 4, 1)
    return _PartPieces(
        runs=runs.reshape(-1, k8).view(torch.int64),
        full=whole[..., 0].permute(1, 2, 0).reshape(-1, k).to(torch.float32),
        count=parts.reshape(k, -1).sum(1).to(torch.float64),
    )


def _take(src: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return src.reshape(-1).index_select(0, idx)


def _select(
    values: torch.Tensor, owner: torch.Tensor, rank: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """The rank-th largest of each map's `values` in [lo, hi] (owner = map index); 0 where rank > count.

    A histogram of `_BINS` bins over [lo, hi] finds the bin that holds it, then a sort of that bin's few values.
    The bin index is a monotone function of the value, so the answer is exact.
    """
    m = rank.shape[0]
    count = torch.bincount(owner, minlength=m)
    width = hi - lo
    scale = _BINS / torch.where(width > 0, width, torch.ones_like(width))
    key = (values - lo.index_select(0, owner)).mul_(scale.index_select(0, owner)).floor_().clamp_(0, _BINS - 1)
    key = key.long().add_(owner * _BINS)
    at_least = torch.bincount(key, minlength=m * _BINS).view(m, _BINS).flip(1).cumsum(1).flip(1)
    b_star = ((at_least >= rank.clamp_min(1)[:, None]).sum(1) - 1).clamp(0, _BINS - 1)
    above = torch.cat([at_least, torch.zeros(m, 1, dtype=at_least.dtype)], 1).gather(1, (b_star + 1)[:, None])[:, 0]
    r2 = rank - above
    # a zero-width bracket holds one value: no candidates needed
    target = torch.where(width > 0, b_star + torch.arange(m) * _BINS, -1)
    cand = key == target.index_select(0, owner)
    cv, cm = values[cand], owner[cand]
    order = torch.sort(cv, descending=True, stable=True).indices
    cm = cm.index_select(0, order)
    order2 = torch.sort(cm, stable=True).indices
    cv = cv.index_select(0, order.index_select(0, order2))
    ccount = torch.bincount(cm, minlength=m)
    start = ccount.cumsum(0) - ccount
    pick = (start + r2 - 1).clamp(0, max(cv.numel() - 1, 0))
    chosen = cv.index_select(0, pick) if cv.numel() else torch.zeros(m, dtype=values.dtype)
    chosen = torch.where(width > 0, chosen, hi)
    return torch.where((rank >= 1) & (rank <= count), chosen, torch.zeros_like(chosen))


def _lane_sums(words: torch.Tensor, owner: torch.Tensor, m: int) -> torch.Tensor:
    """Per-map sums of the uint8 counts packed 8 to an int64 word, `words` `[A, W]` -> float64 `[m, 8 W]`.

    Even and odd bytes go to 16-bit lanes (4 per word) and are summed as int64: a map's total per part is at
    most its pixel count, so a lane never carries into the next while the map's pixels are < 65536.
    """
    lanes = []
    for word in words.unbind(1):
        even = torch.zeros(m, dtype=torch.int64).index_add_(0, owner, word & 0x00FF00FF00FF00FF)
        odd = torch.zeros(m, dtype=torch.int64).index_add_(0, owner, (word >> 8) & 0x00FF00FF00FF00FF)
        for lane in range(4):
            lanes += [(even >> (16 * lane)) & 0xFFFF, (odd >> (16 * lane)) & 0xFFFF]
    return torch.stack(lanes, 1).to(torch.float64)


def _per_map(owner: torch.Tensor, values: torch.Tensor, m: int) -> torch.Tensor:
    """Sum of `values` per map (owner = map index) as float64 `[m]` (bincount: faster than index_add_)."""
    return torch.bincount(owner, values.to(torch.float64), minlength=m)


def _count_rows(flags: torch.Tensor) -> torch.Tensor:
    """Number of True per row of a contiguous bool `[A, span]` (span a multiple of 8): the rows' int64 words
    are added (bytes stay <= span / 8, no carry) and the bytes of the sum folded together."""
    if flags.shape[1] > 248:
        return flags.sum(1)
    w = flags.view(torch.int64).sum(1)
    w = w + (w >> 32)
    w = w + (w >> 16)
    w = w + (w >> 8)
    return w & 0xFF


def _bracket(sub: torch.Tensor, k_sub: float, ceiling: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds (t_lo, t_hi) around the k_sub-th largest of each row of sub-grid values `[m, n]` (>= 0), widened
    by `_MARGIN` of the values and rounded outwards to `_BINS` bins of [0, max]: a guess, checked later.
    `ceiling` (the maps' largest values) is the upper bound when the rank falls off the top of the sub-grid."""
    m, n = sub.shape
    top = sub.amax(1)
    scale = _BINS / torch.where(top > 0, top, torch.ones_like(top))
    z = (sub * scale[:, None]).floor_().clamp_(max=_BINS - 1).long()
    z += (torch.arange(m) * _BINS)[:, None]
    at_least = torch.bincount(z.reshape(-1), minlength=m * _BINS).view(m, _BINS).flip(1).cumsum(1).flip(1)
    r_hi = math.floor(k_sub - _MARGIN * n)
    r_lo = math.ceil(k_sub + _MARGIN * n)
    step = top / _BINS
    t_hi = ceiling if r_hi < 1 else ((at_least >= r_hi).sum(1)).to(torch.float64) * step  # upper edge of its bin
    t_lo = torch.zeros_like(top) if r_lo > n else ((at_least >= r_lo).sum(1) - 1).clamp_min(0) * step
    return t_lo, torch.maximum(t_hi, t_lo)


def _refine(
    first: torch.Tensor,
    last: torch.Tensor,
    length: torch.Tensor,
    owner: torch.Tensor,
    n_above: torch.Tensor,
    k: int,
    t_lo: torch.Tensor,
    t_hi: torch.Tensor,
    npix: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A narrower bracket inside [t_lo, t_hi]: a piece's pixels are spread almost evenly between its ends, so
    the count above T is nearly n_above + sum of length * share of [lo, hi] above T; regula falsi on that
    estimate, then `_REFINE_MARGIN` pixels of slack on each side (checked exactly afterwards)."""
    m = t_lo.shape[0]
    lo, hi = torch.minimum(first, last), torch.maximum(first, last)
    n = length.to(torch.float64)
    # n pixels evenly spaced over [lo, hi]: about (hi - t) / (hi - lo) * (n - 1) + 1/2 of them are >= t
    q = torch.where(hi > lo, (n - 1) / (hi - lo), 1e300)

    def count(t: torch.Tensor) -> torch.Tensor:
        est = (hi - t.index_select(0, owner)).mul_(q).add_(0.5).clamp_min_(0)
        return n_above + torch.bincount(owner, torch.minimum(est, n), minlength=m)

    # Illinois regula falsi on f = count - k (decreasing): a keeps f >= 0, b keeps f < 0. The sub-grid put
    # t_lo and t_hi about `_MARGIN` of the pixels either side of t: f's starting values, no count needed.
    a, b = t_lo.clone(), t_hi.clone()
    spread = _MARGIN * npix
    fa, fb = torch.full_like(a, spread), torch.full_like(b, -spread)
    ca, cb = fa + k, fb + k
    side = torch.zeros(m, dtype=torch.int8)
    for _ in range(_REFINE_STEPS):
        gap = fa - fb
        t = torch.where(gap > 0, a + (b - a) * (fa / gap).clamp(0, 1), (a + b) / 2)
        ct = count(t)
        go = ct >= k
        fb = torch.where(go & (side == 1), fb / 2, fb)
        fa = torch.where(~go & (side == -1), fa / 2, fa)
        a, ca, fa = torch.where(go, t, a), torch.where(go, ct, ca), torch.where(go, ct - k, fa)
        b, cb, fb = torch.where(go, b, t), torch.where(go, cb, ct), torch.where(go, fb, ct - k)
        side = torch.where(go, 1, -1).to(torch.int8)
    # pixels -> values by the smaller of the local and the whole-bracket density (the estimate jumps at flat
    # pieces, where the local slope alone would give too little slack)
    slack = _REFINE_MARGIN * torch.maximum((b - a) / (ca - cb), (t_hi - t_lo) / (2 * spread))
    slack = torch.where(slack.isfinite() & (slack > 0), slack, t_hi - t_lo)
    # a bracket that starts at 0 keeps 0: with fewer positive pixels than k, t is 0 (all positives are kept)
    lower = torch.where(t_lo > 0, torch.maximum(t_lo, a - slack), t_lo)
    return lower, torch.minimum(t_hi, b + slack)


def _sub_bracket(x: torch.Tensor, ay: _Axis, ax: _Axis, k: int, npix: int, top: torch.Tensor):
    """The first bracket (t_lo, t_hi) of each map's t, from its values on the coarse sub-grid (`_bracket`)."""
    m = x.shape[0]
    rows = _rows(x.float(), ay.b0[ay.sub], ay.b1[ay.sub], ay.lam[ay.sub].float())
    sub = _cols(rows, ax.b0[ax.sub], ax.b1[ax.sub], ax.lam[ax.sub].float()).reshape(m, -1).clamp_min(0)
    return _bracket(sub.double(), k * sub.shape[1] / npix, top)


def _classify_pieces(
    x: torch.Tensor, ay: _Axis, ax: _Axis, floor: torch.Tensor, t_hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pieces `[m, S, P]` wholly above the bracket [floor, t_hi], and those that may reach into it (ambiguous)."""
    n_p = ax.piece_b0.shape[0]
    # Classify the pieces (above / straddling / below the bracket) by their first and last pixel, in float32
    # with a margin far above float32's rounding (~1e-6 of the largest value), so the classes are exact.
    eps = 1e-5 * x.abs().amax((1, 2))
    ends = _rows(x.float().index_select(2, torch.cat([ax.piece_b0, ax.piece_b1])), ay.b0, ay.b1, ay.lam.float())
    y0 = ends[..., :n_p]
    d = ends[..., n_p:] - y0
    v_first = y0 + ax.lam_first.float() * d
    v_last = y0 + ax.lam_last.float() * d  # a piece is monotone: bounded by its first and last pixel
    hi32 = (t_hi + eps).float()[:, None, None]
    lo32 = (floor - eps).float()[:, None, None]
    above = (v_first > hi32) & (v_last > hi32)  # pieces wholly above the bracket
    # pieces whose four source pixels are all <= 0 hold no positive value (exactly, from float64)
    cells = x.index_select(1, ay.piece_b0).index_select(2, ax.piece_b0)
    for r, c in ((ay.piece_b0, ax.piece_b1), (ay.piece_b1, ax.piece_b0), (ay.piece_b1, ax.piece_b1)):
        cells = torch.maximum(cells, x.index_select(1, r).index_select(2, c))
    below = (cells <= 0).index_select(1, ay.piece_of) | ((v_first < lo32) & (v_last < lo32))
    amb = ~(above | below)  # pieces that may reach into the bracket: only these are evaluated, in float64
    return above, amb


def _piece_rows(
    x: torch.Tensor, ay: _Axis, ax: _Axis, am: torch.Tensor, ai: torch.Tensor, ap: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ambiguous pieces' two rows at their source columns: y0 and d = y1 - y0 of `y0 + lam * d` (float64)."""
    h, w = x.shape[1:]
    # their two rows, upsampled at the piece's source columns: the same float64 numbers as _rows(x)
    xf = x.reshape(-1)
    r0 = am * (h * w) + ay.b0.index_select(0, ai) * w
    r1 = am * (h * w) + ay.b1.index_select(0, ai) * w
    c0, c1 = ax.piece_b0.index_select(0, ap), ax.piece_b1.index_select(0, ap)
    ly = ay.lam.index_select(0, ai)
    x00, x10 = xf.index_select(0, r0 + c0), xf.index_select(0, r1 + c0)
    x01, x11 = xf.index_select(0, r0 + c1), xf.index_select(0, r1 + c1)
    y0a = x00 + ly * (x10 - x00)
    da = (x01 + ly * (x11 - x01)) - y0a
    return y0a, da


def _bracket_counts(
    v: torch.Tensor,
    am: torch.Tensor,
    n_above: torch.Tensor,
    k: int,
    t_lo: torch.Tensor,
    t_hi: torch.Tensor,
    floor: torch.Tensor,
    npix: int,
):
    """Per ambiguous piece, its pixels > t_hi and >= floor; per map, the pixels > t_hi and whether t is inside."""
    m = t_lo.shape[0]
    n_gt = _count_rows(v > t_hi.index_select(0, am)[:, None])
    n_ge = _count_rows(v >= floor.index_select(0, am)[:, None])
    gt_hi = n_above + _per_map(am, n_gt, m)
    ge_lo = n_above + _per_map(am, n_ge, m)
    ge_lo = torch.where(t_lo > 0, ge_lo, float(npix))
    ok = (gt_hi < k) & (ge_lo >= k)
    return n_gt, n_ge, gt_hi, ok


def _window_threshold(
    v: torch.Tensor,
    am: torch.Tensor,
    up: torch.Tensor,
    length_a: torch.Tensor,
    n_gt: torch.Tensor,
    n_ge: torch.Tensor,
    gt_hi: torch.Tensor,
    k: int,
    t_lo: torch.Tensor,
    t_hi: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """t_eff per map, selected among the pixels inside the bracket, and the mask pixels of each ambiguous piece."""
    span = v.shape[1]
    # pixels inside the bracket: a contiguous run of each monotone piece, at its rising end
    n_win = n_ge - n_gt
    first = torch.where(up, length_a - n_ge, n_gt)
    wa = torch.repeat_interleave(torch.arange(am.shape[0]), n_win)
    wpos = first.index_select(0, wa) + torch.arange(wa.shape[0]) - (n_win.cumsum(0) - n_win).index_select(0, wa)
    wv = _take(v, wa * span + wpos)
    wm = am.index_select(0, wa)
    t = _select(wv, wm, (k - gt_hi).long(), t_lo, t_hi)
    t_eff = torch.where(t > 0, t, torch.full_like(t, _TINY))
    in_mask = (wv >= t_eff.index_select(0, wm)).to(torch.float64)
    c_seg = n_gt + torch.bincount(wa, weights=in_mask, minlength=n_gt.shape[0]).long()  # mask pixels per piece
    return t_eff, c_seg


def _part_overlap(
    above: torch.Tensor,
    parts: _PartPieces,
    ax: _Axis,
    am: torch.Tensor,
    ai: torch.Tensor,
    ap: torch.Tensor,
    c_seg: torch.Tensor,
    up: torch.Tensor,
    npix: int,
) -> torch.Tensor:
    """The masks' overlap with each part `[m, K]` float64: whole pieces above the bracket, then the mask's run of
    each ambiguous piece."""
    m, s_out, n_p = above.shape
    span = ax.span
    overlap = (above.reshape(m, -1).to(torch.float32) @ parts.full).to(torch.float64)
    # the mask is a suffix of a rising piece, a prefix of a falling one
    row = (ai * n_p + ap) * (span + 1) + c_seg + up.long() * (s_out * n_p * (span + 1))
    words = parts.runs.index_select(0, row)
    if npix < 1 << 16:
        overlap += _lane_sums(words, am, m)[:, : parts.parts]
    else:
        overlap.index_add_(0, am, words.view(torch.uint8)[:, : parts.parts].to(torch.float64))
    return overlap


def _top_stats(
    x: torch.Tensor, ay: _Axis, ax: _Axis, k: int, parts: _PartPieces | None = None, wide: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Top-k threshold, mask size and overlap with each part of float64 maps `[m, h, w]` (one image's parts).

    Returns (t_eff [m]: mask = upsampled >= t_eff, mask size [m] float64, overlaps [m, K] float64 or None).
    `wide` brackets t by [0, max] instead of the sub-grid estimate: the fallback, always valid.
    """
    m = x.shape[0]
    npix = ay.b0.shape[0] * ax.b0.shape[0]
    top = x.amax((1, 2)).clamp_min(0)  # no upsampled value exceeds the largest source value
    if wide:
        t_lo, t_hi = torch.zeros_like(top), top
    else:
        t_lo, t_hi = _sub_bracket(x, ay, ax, k, npix, top)
    floor = t_lo.clamp_min(_TINY)  # the bracket's lower edge among positive values
    above, amb = _classify_pieces(x, ay, ax, floor, t_hi)
    length = ax.piece_len.to(torch.float64)
    n_above = above.sum(1).to(torch.float64) @ length
    am, ai, ap = amb.nonzero(as_tuple=True)  # map-major order
    y0a, da = _piece_rows(x, ay, ax, am, ai, ap)
    length_a = ax.piece_len.index_select(0, ap)
    if not wide:
        ends_a = (y0a + ax.lam_first.index_select(0, ap) * da, y0a + ax.lam_last.index_select(0, ap) * da)
        t_lo, t_hi = _refine(*ends_a, length_a, am, n_above, k, t_lo, t_hi, npix)
        floor = t_lo.clamp_min(_TINY)
    v = ax.piece_lam.index_select(0, ap)
    v.mul_(da[:, None]).add_(y0a[:, None])  # = y0 + lam * d, as everywhere  [A, span]
    n_gt, n_ge, gt_hi, ok = _bracket_counts(v, am, n_above, k, t_lo, t_hi, floor, npix)
    up = da >= 0
    t_eff, c_seg = _window_threshold(v, am, up, length_a, n_gt, n_ge, gt_hi, k, t_lo, t_hi)
    size = n_above + _per_map(am, c_seg, m)
    overlap = None if parts is None else _part_overlap(above, parts, ax, am, ai, ap, c_seg, up, npix)
    if not wide and not bool(ok.all()):
        redo = (~ok).nonzero()[:, 0]
        t2, size2, overlap2 = _top_stats(x.index_select(0, redo), ay, ax, k, parts, wide=True)
        t_eff[redo], size[redo] = t2, size2
        if overlap is not None:
            overlap[redo] = overlap2
    return t_eff, size, overlap


def _k(fraction: float, npix: int) -> int:
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(fraction * npix))


def top_masks(maps: torch.Tensor, size: int | tuple[int, int], fraction: float = TOP_FRACTION) -> torch.Tensor:
    """Top-`fraction` masks of `[..., h, w]` maps upsampled to `size`: bool `[..., S, S']` (docs/method.md §7.1).

    Threshold t = the k-th largest upsampled value, k = ceil(fraction * S * S'); mask = (x >= t) & (x > 0).
    So a map keeps exactly k pixels unless values tie at t, and an all-zero map keeps none (decision: the
    "0.9 quantile" taken as the k-th largest value, not an interpolated quantile, so that the mask holds 10%
    of the image and not a pixel less). The upsampling is `upsample_maps`'s (bilinear, align_corners=False)
    evaluated in float64, the same values `part_iou` thresholds.
    """
    s, s2 = size2(size)
    h, w = maps.shape[-2:]
    lead = maps.shape[:-2]
    x = maps.detach().reshape(-1, h, w).to(torch.float64).cpu()
    ay, ax = _axis(h, s), _axis(w, s2)
    k = _k(fraction, s * s2)
    out = torch.empty(x.shape[0], s, s2, dtype=torch.bool)
    with metric_threads():
        for i in range(0, x.shape[0], 256):
            chunk = x[i : i + 256]
            t, _, _ = _top_stats(chunk, ay, ax, k)
            out[i : i + 256] = _upsample64(chunk, ay, ax) >= t[:, None, None]
    return out.reshape(*lead, s, s2).to(maps.device)




def top_part_overlap(maps: torch.Tensor, parts: torch.Tensor, s: tuple[int, int], fraction: float, chunk: int):
    """IoUs `[N, C, K]` float64 and mask sizes `[N, C]` of already checked inputs."""
    n, c, h, w = maps.shape
    ay, ax = _axis(h, s[0]), _axis(w, s[1])
    k = _k(fraction, s[0] * s[1])
    x = maps.detach().cpu()
    pm = parts.detach().cpu().bool()
    iou = torch.zeros(n, c, pm.shape[1], dtype=torch.float64)
    sizes = torch.zeros(n, c, dtype=torch.float64)
    with metric_threads():
        for i in range(n):
            pieces = _part_pieces(pm[i], ax)
            for j in range(0, c, chunk):
                _, size, inter = _top_stats(x[i, j : j + chunk].to(torch.float64), ay, ax, k, pieces)
                union = size[:, None] + pieces.count[None, :] - inter
                iou[i, j : j + chunk] = torch.where(union > 0, inter / union.clamp_min(1), 0.0)
                sizes[i, j : j + chunk] = size
    return iou, sizes
