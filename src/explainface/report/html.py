"""The self-contained HTML report (docs/method.md §8): metrics tables, ROC, channel dictionary and galleries
in one file.

A pure renderer: plain JSON-able data in (the contents of `verification.json` and `explainability.json` per
model, PNG paths), one HTML file out with the pictures embedded as base64 data URIs, inline CSS, and no
network access at all (a Content-Security-Policy forbids it), so the file can be mailed or archived as is.

The input, every key optional except `models`:

    {"title": str, "subtitle": str, "notes": str | [str], "created": str,
     "models": [  # 1 or 2: the model, then its baseline
        {"label": str, "checkpoint": str, "verification": dict | None, "explainability": dict | None,
         "images": {name: png_path}}],  # "roc" -> Verification, "channel_dictionary" -> Channel dictionary,
                                        # any other name -> Galleries
     "figures": [{"title": str, "caption": str, "png_path": str}],
     "why": [{"kind": str, "summary": str, "png_path": str, "methods": [str], "checked": dict}],  # `why` on pairs
     "commands": [str]}
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from explainface.files import atomic_write_text
from explainface.metric_table import HIGHER, LOWER, METRICS, Metric, better_index
from explainface.parts.labels import PART_COLORS, PART_NAMES

#: Section ids, in page order (stable: links and tests use them).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("verification", "Verification"),
    ("explainability", "Explainability"),
    ("channel-dictionary", "Channel dictionary"),
    ("galleries", "Galleries"),
    ("why", "Why these match"),
    ("reproduce", "Reproduce"),
    ("about", "About"),
)
#: Model image names that go to a section of their own; every other name goes to Galleries.
ROC_IMAGE = "roc"
DICTIONARY_IMAGE = "channel_dictionary"
DASH = "\u2014"  # shown for every missing or non-finite number
MINUS = "\u2212"
NEVER_ACTIVE = "(never active)"
TOP_CHANNELS = 8

_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def render_report(report: dict, out_html: str | Path) -> Path:
    """Write the report (see the module docstring for the input) to `out_html` as one self-contained file."""
    return write_page(report_html(report), out_html)


def report_html(report: dict) -> str:
    """The report page as a string (what `render_report` writes)."""
    if not isinstance(report, dict):
        raise ValueError(f"report: expected a dict, got {type(report).__name__}")
    models = report.get("models")
    if not isinstance(models, list) or not 1 <= len(models) <= 2 or not all(isinstance(m, dict) for m in models):
        raise ValueError("report: 'models' must be a list of 1 or 2 dicts (the model, then its baseline)")
    models = [_model_defaults(m, i) for i, m in enumerate(models)]
    title = str(report.get("title") or "explainface report")
    body = "\n".join(
        [
            _header(report, title, models),
            _nav(),
            _section("summary", _summary(models)),
            _section("verification", _verification(models)),
            _section("explainability", _explainability(models)),
            _section("channel-dictionary", _dictionary(models)),
            _section("galleries", _galleries(models, report.get("figures") or [])),
            _section("why", _why(report.get("why") or [])),
            _section("reproduce", _reproduce(report.get("commands") or [])),
            _section("about", ABOUT),
        ]
    )
    return page_html(title, body)


def page_html(title: str, body: str) -> str:
    """A self-contained page around `body`: inline styles, the image-count script, no network (CSP)."""
    total = body.count("<img ")
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body data-images-total="{total}">\n<main>\n{body}\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n'
    )


def write_page(text: str, out_html: str | Path) -> Path:
    """Write a page atomically (a temporary file, then a rename)."""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out, text)


# --- numbers ---------------------------------------------------------------------------------------------------


def _number(x) -> float | None:
    """A finite float, or None for anything missing, non-numeric or non-finite (never raises)."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _fmt(x: float | None, kind: str) -> str:
    """A value in its unit: "pct" (a fraction shown as %), "f4"/"f3"/"f2" (decimals) or "int"."""
    if x is None:
        return DASH
    if kind == "pct":
        return f"{100 * x:.2f}%"
    if kind in ("int", "count"):
        return f"{x:,.0f}"
    return f"{x:.{int(kind[1:])}f}"


def _fmt_spread(x: float | None, kind: str) -> str:
    """The ± part: percentage points for "pct" values, the value's own decimals otherwise."""
    return f"{100 * x:.2f}" if kind == "pct" else _fmt(x, kind)


def _fmt_delta(d: float | None, kind: str) -> str:
    if d is None:
        return DASH
    if d == 0:
        return "0"
    sign = "+" if d > 0 else MINUS
    mag = abs(d)
    if kind == "pct":
        return f"{sign}{100 * mag:.2f} pp"
    return f"{sign}{_fmt(mag, kind)}"


_SCORE: dict[str, Callable[[float], float]] = {HIGHER: lambda x: x, LOWER: lambda x: -x}


@dataclass(frozen=True)
class Row:
    """One table row: where its value lives in a model dict, how to show it, and which direction is better."""

    label: str
    source: str  # "verification" or "explainability"
    key: tuple[str, ...]
    spread: tuple[str, ...] | None = None
    kind: str = "f4"  # see _fmt, or "text"
    better: str | None = None  # HIGHER, LOWER or None (not compared); a metric row: its metric's
    metric: Metric | None = None  # a metric of `metric_table`: its format and better side (kind/better unused)

    def raw(self, model: dict, key: tuple[str, ...] | None = None):
        d = model.get(self.source)
        for k in key or self.key:
            if not isinstance(d, dict):
                return None
            d = d.get(k)
        return d

    def value(self, model: dict) -> float | None:
        v = self.raw(model)
        if self.kind == "count":
            return float(len(v)) if isinstance(v, list) and v else None
        return _number(v)

    def cell(self, model: dict) -> str:
        if self.metric is not None:
            spread = _number(self.raw(model, self.spread)) if self.spread else None
            return self.metric.with_spread(self.value(model), spread)
        if self.kind == "text":
            v = self.raw(model)
            return DASH if v is None or v == "" else esc(v)
        text = _fmt(self.value(model), self.kind)
        s = _number(self.raw(model, self.spread)) if self.spread else None
        if s is not None and text != DASH:
            text += f" \u00b1 {_fmt_spread(s, self.kind)}"
        return text


def _metric_table(table_id: str, rows: list[Row], models: list[dict]) -> str:
    """Rows of metrics, one column per model; with two models the better value is marked and a Δ column added."""
    two = len(models) == 2
    head = "".join(f'<th scope="col">{esc(m["label"])}</th>' for m in models)
    if two:
        head += f'<th scope="col" class="delta">\u0394 {esc(models[0]["label"])} {MINUS} {esc(models[1]["label"])}</th>'
    lines = [f'<table id="{table_id}" class="metrics">', f'<thead><tr><th scope="col">Metric</th>{head}</tr></thead>']
    lines.append("<tbody>")
    for row in rows:
        vals = [row.value(m) for m in models] if row.kind != "text" else [None] * len(models)
        best = (better_index(row.metric, vals) if row.metric else _better_index(vals, row.better)) if two else None
        cells = []
        for i, m in enumerate(models):
            cls = ' class="num better"' if i == best else ' class="num"' if row.kind != "text" else ""
            mark = ' <span class="mark" title="better">\u2713</span>' if i == best else ""
            cells.append(f"<td{cls}>{row.cell(m)}{mark}</td>")
        if two:
            if row.metric is not None:
                delta = row.metric.format_delta(vals[0] - vals[1]) if None not in vals else DASH
            else:
                delta = _fmt_delta(vals[0] - vals[1], row.kind) if None not in vals and row.kind != "text" else DASH
            cells.append(f'<td class="num delta">{delta if row.kind != "text" else ""}</td>')
        lines.append(f'<tr><th scope="row">{esc(row.label)}</th>{"".join(cells)}</tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _better_index(vals: list[float | None], better: str | None) -> int | None:
    """Index of the better of two values, or None when not compared, a value is missing, or they tie."""
    if better is None or None in vals:
        return None
    a, b = (_SCORE[better](v) for v in vals)
    return None if a == b else 0 if a > b else 1


# --- sections --------------------------------------------------------------------------------------------------

def metric_row(key: str) -> Row:
    """The row of a metric of `metric_table.METRICS`: its label, file, spread, format and better side."""
    m = METRICS[key]
    return Row(m.label, m.source, (m.key,), (m.spread,) if m.spread else None, metric=m)


SUMMARY_ROWS = [metric_row(k) for k in ("accuracy_mean", "auc", "eer", "pe_mean", "ls", "ar_mean")]


def _summary(models: list[dict]) -> str:
    note = (
        '<p class="hint">\u2713 marks the better value: higher accuracy, AUC, PE and LS; lower EER; AR nearer 1. '
        "\u00b1 is the standard deviation over folds (accuracy), the standard error over draws (PE) and the standard "
        "deviation over draws (AR).</p>"
        if len(models) == 2
        else '<p class="hint">\u00b1 is the standard deviation over folds (accuracy), the standard error over draws '
        "(PE) and the standard deviation over draws (AR).</p>"
    )
    return _metric_table("summary-table", SUMMARY_ROWS, models) + "\n" + note


def _tar_keys(models: list[dict]) -> list[str]:
    keys: list[str] = []
    for m in models:
        tar = (m.get("verification") or {}).get("tar_at_far")
        if isinstance(tar, dict):
            keys += [str(k) for k in tar if str(k) not in keys]
    return sorted(keys, key=lambda k: -(_number(k) if _number(k) is not None else -math.inf))


def _verification(models: list[dict]) -> str:
    rows = SUMMARY_ROWS[:3] + [
        Row(f"TAR @ FAR = {k}", "verification", ("tar_at_far", k), None, "pct", HIGHER) for k in _tar_keys(models)
    ]
    rows += [
        Row("Pairs", "verification", ("pairs",), None, "int"),
        Row("Images", "verification", ("images",), None, "int"),
        Row("Network", "verification", ("model_label",), kind="text"),
        Row("Pair file", "verification", ("pairs_file",), kind="text"),
    ]
    if any(m.get("verification") for m in models):
        parts = [_metric_table("verification-table", rows, models)]
        parts.append(
            '<p class="hint">10-fold protocol: the threshold is chosen on nine folds and the accuracy measured on the '
            "tenth; TAR @ FAR is the share of same-person pairs accepted at that false-accept rate.</p>"
        )
    else:
        parts = ['<p class="missing">No verification results were given.</p>']
    rocs = [(m["label"], m["images"][ROC_IMAGE]) for m in models if ROC_IMAGE in m["images"]]
    if rocs:
        parts.append('<div class="grid">')
        parts += [figure_html(f"ROC: {label}", "", path) for label, path in rocs]
        parts.append("</div>")
    return "\n".join(parts)


EXPLAIN_ROWS = [
    metric_row("pe_mean"),
    metric_row("ls"),
    Row("Channels active at least once", "explainability", ("ls_channels",), None, "int"),
    Row("Channels in the layer", "explainability", ("channels",), None, "count"),
    metric_row("ar_mean"),
    metric_row("zero_share"),
    metric_row("at_most_two_share"),
    metric_row("channel_overlap"),
    metric_row("peak_spread"),
    Row("Faces", "explainability", ("images",), None, "int"),
    Row("Layer", "explainability", ("layer",), kind="text"),
]


def _explainability(models: list[dict]) -> str:
    if not any(m.get("explainability") for m in models):
        return '<p class="missing">No explainability results were given.</p>'
    table = _metric_table("explainability-table", EXPLAIN_ROWS, models)
    return (
        f"{table}\n"
        '<p class="hint">Maps are the target layer\u2019s channels on held-out faces; each is upsampled to the face '
        "and its top 10% compared with the face parts (see About).</p>"
    )


def _part_groups(channels: list) -> list[tuple[str, list[dict]]]:
    """Channels grouped by dominant part: the face parts in PART_NAMES order, then others, then never active."""
    groups: dict[str, list[dict]] = {}
    for c in channels:
        if isinstance(c, dict):
            part = c.get("part")
            groups.setdefault(NEVER_ACTIVE if part is None else str(part), []).append(c)
    order = [p for p in PART_NAMES[1:] if p in groups]
    order += sorted(p for p in groups if p not in PART_NAMES[1:] and p != NEVER_ACTIVE)
    order += [NEVER_ACTIVE] if NEVER_ACTIVE in groups else []
    return [(p, groups[p]) for p in order]


def _dictionary_table(table_id: str, channels: list) -> str:
    lines = [
        f'<table id="{table_id}" class="dictionary">',
        '<thead><tr><th scope="col">Part</th><th scope="col">Channels</th><th scope="col">Mean frequency</th>'
        '<th scope="col">Top channels (frequency)</th></tr></thead>',
        "<tbody>",
    ]
    for part, cs in _part_groups(channels):
        freqs = [(f, c) for c in cs if (f := _number(c.get("frequency"))) is not None]
        mean = _fmt(sum(f for f, _ in freqs) / len(freqs), "f2") if freqs else DASH
        top = sorted(freqs, key=lambda fc: -fc[0])[:TOP_CHANNELS]
        listed = ", ".join(f"{esc(c.get('channel', '?'))} ({f:.2f})" for f, c in top)
        more = len(cs) - len(top)
        if more > 0 and top:
            listed += f", \u2026 {more} more"
        colour = PART_COLORS.get(part)
        swatch = f'<span class="swatch" style="background: rgb{colour}"></span>' if colour else ""
        lines.append(
            f'<tr><th scope="row">{swatch}{esc(part)}</th><td class="num">{len(cs)}</td><td class="num">{mean}</td>'
            f'<td class="channels">{listed or DASH}</td></tr>'
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _dictionary(models: list[dict]) -> str:
    parts = [
        '<p class="hint">Each channel is assigned the part its top-10% mask overlaps most, in the share of faces '
        "where it is active (frequency). A part-like network has many channels per part at high frequency.</p>"
    ]
    for i, m in enumerate(models):
        parts.append(f"<h3>{esc(m['label'])}</h3>")
        channels = (m.get("explainability") or {}).get("channels")
        if isinstance(channels, list) and channels:
            parts.append(_dictionary_table(f"dictionary-{i}", channels))
        else:
            parts.append('<p class="missing">No channel dictionary (no explainability results for this model).</p>')
        if DICTIONARY_IMAGE in m["images"]:
            parts.append(figure_html(f"Channel dictionary: {m['label']}", "", m["images"][DICTIONARY_IMAGE]))
    return "\n".join(parts)


def _galleries(models: list[dict], figures: list) -> str:
    items = []
    for f in figures:
        if not isinstance(f, dict) or not f.get("png_path"):
            raise ValueError(f"report: every figure needs a png_path, got {f!r}")
        items.append(figure_html(str(f.get("title") or ""), str(f.get("caption") or ""), f["png_path"], wide=True))
    for m in models:
        for name, path in m["images"].items():
            if name not in (ROC_IMAGE, DICTIONARY_IMAGE):
                items.append(figure_html(f"{m['label']}: {name}", "", path, wide=True))
    if not items:
        return '<p class="missing">No figures were given.</p>'
    return "\n".join(items)


def _why(examples: list) -> str:
    if not examples:
        return '<p class="missing">No pairs were explained (the report needs verification pairs with landmarks).</p>'
    items = [
        '<p class="hint">Each face part\u2019s score for the pair\u2019s cosine by every attribution method '
        "(channels: the part\u2019s channels replaced by other faces\u2019; occlusion: the part\u2019s region "
        "covered; gradient (xSSAB), Grad-CAM and CorrRISE: their pixel maps averaged over the part); red supports "
        "the match, blue argues against it. The bottom row is the first pixel map\u2019s similar and dissimilar "
        "pixels.</p>"
    ]
    checked = next((ex.get("checked") for ex in examples if isinstance(ex, dict) and ex.get("checked")), None)
    if checked:
        rates = ", ".join(f"{esc(m)} {100 * r:.0f}%" if r is not None else f"{esc(m)} (not checked)"
                          for m, r in checked["hit_rate"].items())  # fmt: skip
        items.append(f'<p class="checked">Checked against planted ground truth ({esc(checked["groundtruth"])}): '
                     f"the methods in the order of how often they rank a planted part first: {rates}.</p>")  # fmt: skip
    for ex in examples:
        if not isinstance(ex, dict) or not ex.get("png_path"):
            raise ValueError(f"report: every why example needs a png_path, got {ex!r}")
        items.append(figure_html(str(ex.get("kind") or ""), str(ex.get("summary") or ""), ex["png_path"], wide=True))
    return "\n".join(items)


def _reproduce(commands: list) -> str:
    if not commands:
        return '<p class="missing">No commands were given.</p>'
    text = "\n".join(esc(c) for c in commands)
    return f"<p>Run from the repository root; every number and picture above comes from these:</p>\n<pre>{text}</pre>"


ABOUT = """<dl>
<dt>Verification accuracy</dt><dd>Share of face pairs correctly called same or different person, 10-fold protocol \
(threshold picked on nine folds, measured on the tenth); \u00b1 is the standard deviation over folds.</dd>
<dt>AUC, EER, TAR @ FAR</dt><dd>Area under the ROC curve (higher is better); the equal error rate, where \
false accepts equal false rejects (lower is better); the share of same-person pairs accepted at a fixed \
false-accept rate.</dd>
<dt>PE \u2014 part explainability</dt><dd>Mean over channels of the best IoU between the channel\u2019s top-10% mask \
and a face part (higher = more part-like).</dd>
<dt>LS \u2014 location consistency</dt><dd>How consistently each channel picks the same part across faces, averaged \
over the channels active at least once (higher = more consistent).</dd>
<dt>AR \u2014 activation robustness</dt><dd>Mean number of activation peaks per map, by topographic prominence \
(closer to 1\u20132 = more localised; a zero map has 0 peaks).</dd>
<dt>Channel overlap</dt><dd>Mean IoU between two different channels\u2019 top-10% masks on the same face. PE, LS \
and AR also reward a network whose channels all fire on one large part; a high overlap says that happened.</dd>
<dt>Channel dictionary</dt><dd>Each channel\u2019s dominant part and how often it picks it.</dd>
</dl>
<p class="hint">Paper: Explainable Channel Loss (ECLoss) for explainable face recognition; \
docs/method.md \u00a77\u20138 of the explainface project define the metrics exactly.</p>"""


# --- page parts ------------------------------------------------------------------------------------------------


def _model_defaults(m: dict, i: int) -> dict:
    images = m.get("images") or {}
    if not isinstance(images, dict):
        raise ValueError(f"report: model {i}: 'images' must be a dict name -> png path")
    label = m.get("label") or ("model" if i == 0 else "baseline")
    out = {**m, "label": str(label), "images": {str(k): v for k, v in images.items() if v}}
    for key in ("verification", "explainability"):
        if not isinstance(out.get(key), dict):
            out[key] = None
    return out


def _header(report: dict, title: str, models: list[dict]) -> str:
    lines = ["<header>", f"<h1>{esc(title)}</h1>"]
    if report.get("subtitle"):
        lines.append(f'<p class="subtitle">{esc(report["subtitle"])}</p>')
    if report.get("created"):
        lines.append(f'<p class="meta">Created {esc(report["created"])}</p>')
    notes = report.get("notes")
    if isinstance(notes, str) and notes:
        lines.append(f'<p class="notes">{esc(notes)}</p>')
    elif isinstance(notes, list) and notes:
        lines.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    rows = []
    for i, m in enumerate(models):
        role = "model" if i == 0 else "baseline"
        net = (m.get("verification") or {}).get("model_label") or (m.get("explainability") or {}).get("model_label")
        rows.append(
            f'<tr><th scope="row">{esc(m["label"])}</th><td>{role}</td><td>{esc(net) if net else DASH}</td>'
            f'<td class="path">{esc(m.get("checkpoint") or DASH)}</td></tr>'
        )
    lines.append(
        '<table id="models-table" class="models"><thead><tr><th scope="col">Label</th><th scope="col">Role</th>'
        '<th scope="col">Network</th><th scope="col">Checkpoint</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    lines.append("</header>")
    return "\n".join(lines)


def _nav() -> str:
    return "<nav>" + " ".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title in SECTIONS) + "</nav>"


def _section(sid: str, content: str) -> str:
    title = dict(SECTIONS)[sid]
    return f'<section>\n<h2 id="{sid}">{esc(title)}</h2>\n{content}\n</section>'


def figure_html(title: str, caption: str, path, wide: bool = False) -> str:
    """A figure block: the PNG at `path` embedded as a data URI, with its title and caption."""
    src = _data_uri(path)
    cap = f"<strong>{esc(title)}</strong>" + (f" {esc(caption)}" if caption else "")
    cls = "figure wide" if wide else "figure"
    return f'<figure class="{cls}"><img src="{src}" alt="{esc(title)}"><figcaption>{cap}</figcaption></figure>'


def _data_uri(path) -> str:
    """The image file as a base64 data URI; a missing file or one that is not PNG/JPEG is a ValueError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ValueError(f"{p}: cannot read report image ({err.strerror or err})") from None
    mime = next((t for magic, t in _MAGIC.items() if data.startswith(magic)), None)
    if mime is None:
        raise ValueError(f"{p}: report image is neither PNG nor JPEG")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def esc(x) -> str:
    """`x` as HTML text (quotes escaped too)."""
    return html.escape(str(x), quote=True)


# After load: how many <img> decoded (naturalWidth > 0), for a browser test to compare with data-images-total.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.dataset.imagesLoaded = String(ok);
});
"""

CSS = """
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #d5dbe3; --head: #eef2f7; --accent: #2962a8; --good: #e3f4e6; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fb; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh; }
h1 { margin: 0 0 4px; font-size: 28px; }
h2 { margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); font-size: 21px; }
h3 { margin: 20px 0 8px; font-size: 17px; }
.subtitle { margin: 0 0 4px; font-size: 17px; color: var(--muted); }
.meta, .hint { color: var(--muted); font-size: 13px; }
.notes { margin: 8px 0; }
.missing { color: #9a3412; font-style: italic; }
nav { position: sticky; top: 0; background: #fff; padding: 8px 0; border-bottom: 1px solid var(--line);
  margin: 16px 0 0; z-index: 1; }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; font-size: 14px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
thead th { background: var(--head); }
tbody th { font-weight: 600; background: #fafbfd; }
tbody tr:nth-child(even) td { background: #fbfcfe; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.better, tbody tr:nth-child(even) td.better { background: var(--good); font-weight: 600; }
td.delta { color: var(--muted); }
.mark { color: #1b7f3b; }
table.metrics { min-width: 640px; }
table.dictionary { width: 100%; }
td.channels { font-size: 13px; color: var(--muted); }
td.path { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 7px; border: 1px solid #0003;
  border-radius: 2px; vertical-align: baseline; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
figure { margin: 16px 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 13px; color: var(--muted); margin-top: 6px; }
figcaption strong { color: var(--ink); }
pre { background: #f3f5f8; border: 1px solid var(--line); padding: 12px; overflow-x: auto; font-size: 13px;
  white-space: pre-wrap; word-break: break-all; }
dt { font-weight: 600; margin-top: 8px; }
dd { margin: 2px 0 0 20px; }
"""
