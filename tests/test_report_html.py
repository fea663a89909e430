"""The HTML report (docs/method.md §8): every section, the numbers given, self-contained, escaped, and rendered by
Chromium."""

from __future__ import annotations

import base64
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from browser import WINDOW, chromium_path, render
from explainface.report import render_report

SECTION_IDS = ["summary", "verification", "explainability", "channel-dictionary", "galleries", "why", "reproduce",
               "about"]  # fmt: skip
HEADINGS = ["Summary", "Verification", "Explainability", "Channel dictionary", "Galleries", "Why these match",
            "Reproduce", "About"]  # fmt: skip
DASH = "\u2014"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """What a test needs of a page: headings, tables as rows of cell texts, images, scripts, links, tag balance."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.h2: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.cell_classes: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.scripts: list[dict] = []
        self.links: list[str] = []
        self.body: dict[str, str] = {}
        self.unbalanced: list[str] = []
        self._stack: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._h2: str | None = None
        self._h2_text: list[str] = []
        self._script_text: list[str] | None = None
        self.feed(text)
        self.close()
        if self._stack:
            self.unbalanced.append(f"unclosed {self._stack}")

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in VOID:
            self._stack.append(tag)
        if tag == "body":
            self.body = a
        elif tag == "h2":
            self._h2, self._h2_text = a.get("id", ""), []
        elif tag == "table":
            self._table = a.get("id", f"table{len(self.tables)}")
            self.tables[self._table], self.cell_classes[self._table] = [], []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
            self.cell_classes[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
            self.cell_classes[self._table][-1].append(a.get("class") or "")
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "script":
            self.scripts.append(a)
        elif tag == "a" or tag == "link":
            self.links.append(a.get("href", ""))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self._stack or self._stack[-1] != tag:
            self.unbalanced.append(f"</{tag}> closes {self._stack[-1:] or 'nothing'}")
        else:
            self._stack.pop()
        if tag == "h2" and self._h2 is not None:
            self.h2[self._h2] = "".join(self._h2_text).strip()
            self._h2 = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._h2 is not None:
            self._h2_text.append(data)

    def row(self, table: str, label: str) -> list[str]:
        """The cells after the row header `label` of `table`."""
        rows = [r for r in self.tables[table] if r and r[0] == label]
        assert len(rows) == 1, f"{table}: {len(rows)} rows named {label!r}"
        return rows[0][1:]

    def row_classes(self, table: str, label: str) -> list[str]:
        i = [k for k, r in enumerate(self.tables[table]) if r and r[0] == label][0]
        return self.cell_classes[table][i][1:]


def _png(path: Path, h: int, w: int, seed: int) -> Path:
    """A small picture that is not blank: a gradient with a disc."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, [int(v) for v in rng.integers(0, 255, 3)], -1)
    assert cv2.imwrite(str(path), img)
    return path


def _channels(parts: list[str | None], freqs: list[float | None]) -> list[dict]:
    return [
        {"channel": i, "part": p, "frequency": f, "active_images": 0 if p is None else 10}
        for i, (p, f) in enumerate(zip(parts, freqs))
    ]


VER_A = {
    "accuracy_mean": 0.9412,
    "accuracy_std": 0.0121,
    "auc": 0.98371,
    "eer": 0.0623,
    "tar_at_far": {"0.01": 0.712, "0.001": 0.455},
    "pairs": 6000,
    "images": 3000,
    "model_label": "vgg16_bn w0.25 @112",
}
VER_B = {
    "accuracy_mean": 0.9455,
    "accuracy_std": 0.0098,
    "auc": 0.9851,
    "eer": 0.0590,
    "tar_at_far": {"0.01": 0.731, "0.001": 0.5},
    "pairs": 6000,
    "images": 3000,
}
PARTS_A = ["eyes", "eyes", "nose", "mouth", "eyes", None, "hair", "nose"]
FREQ_A = [0.9, 0.7, 0.8, 0.6, 0.95, None, 0.5, 0.4]
EX_A = {
    "pe_mean": 0.3812,
    "pe_se": 0.0041,
    "ls": 0.2817,
    "ls_channels": 7,
    "ar_mean": 1.43,
    "ar_std": 0.03,
    "zero_share": 0.081,
    "at_most_two_share": 0.912,
    "images": 200,
    "layer": "features.relu5_3",
    "channels": _channels(PARTS_A, FREQ_A),
}
EX_B = {
    "pe_mean": 0.2214,
    "pe_se": 0.0052,
    "ls": 0.1533,
    "ls_channels": 8,
    "ar_mean": 0.5,
    "ar_std": 0.06,
    "zero_share": 0.142,
    "at_most_two_share": 0.553,
    "images": 200,
    "layer": "features.relu5_3",
    "channels": _channels(["jaw"] * 8, [0.3] * 8),
}


def _two_model_report(tmp: Path, scale: int = 1) -> dict:
    """Two models with every section filled: 2 ROC images, 1 dictionary picture, 2 figures (5 images)."""

    def png(name: str, h: int, w: int, seed: int) -> str:
        return str(_png(tmp / name, h * scale, w * scale, seed))

    return {
        "title": "ECLoss vs ordinary",
        "subtitle": "synthetic faces",
        "notes": ["fake numbers"],
        "created": "2026-11-22 10:00 UTC",
        "models": [
            {
                "label": "ECLoss",
                "checkpoint": "runs/a.safetensors",
                "verification": VER_A,
                "explainability": EX_A,
                "images": {"roc": png("roc_a.png", 80, 100, 1), "channel_dictionary": png("dict.png", 60, 160, 2)},
            },
            {
                "label": "Ordinary",
                "checkpoint": "runs/b.safetensors",
                "verification": VER_B,
                "explainability": EX_B,
                "images": {"roc": png("roc_b.png", 80, 100, 3)},
            },
        ],
        "figures": [
            {"title": "Overlays", "caption": "top 10%", "png_path": png("g1.png", 90, 240, 4)},
            {"title": "Curves", "caption": "", "png_path": png("g2.png", 70, 200, 5)},
        ],
        "commands": ["explainface report --model a --baseline b --out r"],
    }


@pytest.fixture
def report(tmp_path) -> dict:
    return _two_model_report(tmp_path)


def _page(report: dict, tmp_path: Path) -> tuple[Page, str]:
    text = render_report(report, tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    return Page(text), text


def test_report_has_every_section_heading_with_a_stable_id(report, tmp_path):
    page, _ = _page(report, tmp_path)
    assert list(page.h2) == SECTION_IDS
    assert list(page.h2.values()) == HEADINGS


def test_report_html_is_well_formed(report, tmp_path):
    page, text = _page(report, tmp_path)
    assert text.startswith("<!DOCTYPE html>")
    assert page.unbalanced == []


def test_summary_table_holds_the_given_numbers_formatted(report, tmp_path):
    page, _ = _page(report, tmp_path)
    t = "summary-table"
    assert page.tables[t][0] == ["Metric", "ECLoss", "Ordinary", "\u0394 ECLoss \u2212 Ordinary"]
    assert page.row(t, "Verification accuracy")[:2] == ["94.12% \u00b1 1.21", "94.55% \u00b1 0.98 \u2713"]
    assert page.row(t, "AUC")[:2] == ["0.9837", "0.9851 \u2713"]
    assert page.row(t, "EER")[:2] == ["6.23%", "5.90% \u2713"]
    assert page.row(t, "PE (part explainability)")[:2] == ["0.3812 \u00b1 0.0041 \u2713", "0.2214 \u00b1 0.0052"]
    assert page.row(t, "LS (location consistency)")[:2] == ["0.28170 \u2713", "0.15330"]


def test_summary_difference_column_is_first_minus_second(report, tmp_path):
    page, _ = _page(report, tmp_path)
    assert page.row("summary-table", "Verification accuracy")[2] == "\u22120.43 pp"
    assert page.row("summary-table", "PE (part explainability)")[2] == "+0.1598"


def test_better_value_is_marked_in_the_metric_direction(report, tmp_path):
    page, _ = _page(report, tmp_path)
    better = {
        label: [("better" in c) for c in page.row_classes("summary-table", label)[:2]]
        for label in ["Verification accuracy", "EER", "PE (part explainability)", "AR (peaks per map)"]
    }
    assert better["Verification accuracy"] == [False, True]  # higher is better
    assert better["EER"] == [False, True]  # lower is better
    assert better["PE (part explainability)"] == [True, False]
    assert better["AR (peaks per map)"] == [True, False]  # nearer 1: |1.43 - 1| < |0.5 - 1|, though 0.5 is lower


def test_verification_table_lists_tar_at_each_far(report, tmp_path):
    page, _ = _page(report, tmp_path)
    assert page.row("verification-table", "TAR @ FAR = 0.01")[:2] == ["71.20%", "73.10% \u2713"]
    assert page.row("verification-table", "TAR @ FAR = 0.001")[:2] == ["45.50%", "50.00% \u2713"]
    assert page.row("verification-table", "Pairs")[:2] == ["6,000", "6,000"]


def test_explainability_table_holds_the_given_numbers(report, tmp_path):
    page, _ = _page(report, tmp_path)
    t = "explainability-table"
    assert page.row(t, "AR (peaks per map)")[:2] == ["1.430 \u00b1 0.030 \u2713", "0.500 \u00b1 0.060"]
    assert page.row(t, "Zero maps")[:2] == ["8.1% \u2713", "14.2%"]
    assert page.row(t, "Maps with \u2264 2 peaks")[:2] == ["91.2% \u2713", "55.3%"]
    assert page.row(t, "Channels active at least once")[:2] == ["7", "8"]
    assert page.row(t, "Channels in the layer")[:2] == ["8", "8"]


def test_channel_dictionary_counts_channels_and_mean_frequency_per_part(report, tmp_path):
    page, _ = _page(report, tmp_path)
    expected: dict[str, list] = {}
    for p, f in zip(PARTS_A, FREQ_A):
        expected.setdefault(p or "(never active)", []).append(f)
    rows = page.tables["dictionary-0"][1:]
    assert {r[0]: int(r[1]) for r in rows} == {p: len(fs) for p, fs in expected.items()}
    for r in rows:
        fs = [f for f in expected[r[0]] if f is not None]
        assert r[2] == (f"{sum(fs) / len(fs):.2f}" if fs else DASH)
    assert [r[0] for r in rows] == ["hair", "eyes", "nose", "mouth", "(never active)"]  # PART_NAMES order
    assert page.row("dictionary-0", "eyes")[2] == "4 (0.95), 0 (0.90), 1 (0.70)"  # most frequent first


def test_images_are_embedded_as_data_uris_of_the_given_files(report, tmp_path):
    page, _ = _page(report, tmp_path)
    assert len(page.images) == 5
    given = {Path(p).read_bytes() for m in report["models"] for p in m["images"].values()}
    given |= {Path(f["png_path"]).read_bytes() for f in report["figures"]}
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in page.images)
    assert {base64.b64decode(src[len(prefix) :]) for src in page.images} == given
    assert page.body["data-images-total"] == "5"


def test_report_makes_no_network_reference(report, tmp_path):
    page, text = _page(report, tmp_path)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"https?:|ftp:|//[a-z]|@import|url\(", text, re.IGNORECASE)
    assert all(h.startswith("#") for h in page.links)
    assert all("src" not in s for s in page.scripts)


def test_text_is_escaped(report, tmp_path):
    report["models"][1]["label"] = "<script>alert(1)</script>"
    report["commands"] = ["echo '<b>' && true"]
    page, text = _page(report, tmp_path)
    assert len(page.scripts) == 1  # only the report's own
    assert page.tables["summary-table"][0][2] == "<script>alert(1)</script>"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "echo &#x27;&lt;b&gt;&#x27; &amp;&amp; true" in text


def test_missing_and_non_finite_numbers_render_as_dashes(report, tmp_path):
    report["models"][0]["verification"] = None
    report["models"][1]["explainability"] = {
        "pe_mean": float("nan"),
        "pe_se": 0.01,
        "ls": None,
        "ar_mean": float("inf"),
        "ar_std": "x",
        "zero_share": "0.25",
        "channels": [],
    }
    page, _ = _page(report, tmp_path)
    t = "summary-table"
    assert page.row(t, "Verification accuracy") == [DASH, "94.55% \u00b1 0.98", DASH]
    assert page.row(t, "PE (part explainability)") == ["0.3812 \u00b1 0.0041", DASH, DASH]
    assert page.row(t, "LS (location consistency)") == ["0.28170", DASH, DASH]
    assert page.row(t, "AR (peaks per map)") == ["1.430 \u00b1 0.030", DASH, DASH]
    assert page.row("explainability-table", "Zero maps")[1] == "25.0%"


def test_sections_without_results_say_so_instead_of_a_table(report, tmp_path):
    for m in report["models"]:
        m["verification"] = m["explainability"] = None
    page, text = _page(report, tmp_path)
    assert "verification-table" not in page.tables and "explainability-table" not in page.tables
    assert "No verification results were given." in text and "No explainability results were given." in text
    assert set(page.row("summary-table", "AUC")) == {DASH}


def test_one_model_report_has_no_comparison_column(report, tmp_path):
    report["models"] = report["models"][:1]
    page, _ = _page(report, tmp_path)
    for t in ("summary-table", "verification-table", "explainability-table"):
        assert all(len(r) == 2 for r in page.tables[t]), t
    assert "\u2713" not in "".join(c for r in page.tables["summary-table"] for c in r)


def test_missing_image_file_is_a_value_error_naming_it(report, tmp_path):
    report["figures"][0]["png_path"] = str(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="nope.png"):
        render_report(report, tmp_path / "r.html")


def test_image_that_is_not_png_or_jpeg_is_a_value_error_naming_it(report, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    report["figures"][0]["png_path"] = str(bad)
    with pytest.raises(ValueError, match="bad.png.*neither PNG nor JPEG"):
        render_report(report, tmp_path / "r.html")


@pytest.mark.parametrize("models", [[], [{}, {}, {}], None])
def test_report_needs_one_or_two_models(report, tmp_path, models):
    report["models"] = models
    with pytest.raises(ValueError, match="1 or 2"):
        render_report(report, tmp_path / "r.html")


# --- in a real browser --------------------------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="no Chromium (run scripts/install_browser.sh or set EXPLAINFACE_CHROMIUM)"
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Page, Path, int]:
    """The two-model report loaded once in headless Chromium: the DOM after load, the screenshot, images given."""
    tmp = tmp_path_factory.mktemp("browser")
    html = render_report(_two_model_report(tmp, scale=2), tmp / "report.html")
    dom = render(html, tmp / "shot.png", timeout=60)
    return Page(dom), tmp / "shot.png", 5


@pytest.mark.slow
@needs_chromium
def test_chromium_shows_every_section_heading(rendered):
    page, _, _ = rendered
    assert list(page.h2) == SECTION_IDS
    assert list(page.h2.values()) == HEADINGS


@needs_chromium
def test_chromium_lays_out_the_metric_tables_with_rows(rendered):
    page, _, _ = rendered
    for t in ("summary-table", "verification-table", "explainability-table", "dictionary-0", "dictionary-1"):
        assert len(page.tables[t]) >= 2, t
    assert page.row("summary-table", "AUC")[:2] == ["0.9837", "0.9851 \u2713"]


@needs_chromium
def test_chromium_decodes_every_image(rendered):
    page, _, given = rendered
    assert page.body.get("data-images-total") == str(given)
    assert page.body.get("data-images-loaded") == str(given)  # set by the page's script after load


@needs_chromium
def test_chromium_screenshot_has_the_window_size_and_is_not_blank(rendered):
    _, shot, _ = rendered
    img = cv2.imread(str(shot))
    assert img is not None, f"{shot} is not a readable PNG"
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    assert float(img.astype(np.float64).std()) > 10.0
    assert not math.isclose(float(img[..., 0].mean()), 255.0)


@pytest.mark.slow
@needs_chromium
def test_chromium_counts_an_image_that_does_not_decode_as_not_loaded(tmp_path):
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(_png(tmp_path / "ok.png", 60, 60, 0).read_bytes()[:40])  # PNG signature, no data
    rep = {
        "models": [{"label": "m"}],
        "figures": [
            {"title": "ok", "png_path": str(tmp_path / "ok.png")},
            {"title": "broken", "png_path": str(truncated)},
        ],
    }
    page = Page(render(render_report(rep, tmp_path / "r.html"), tmp_path / "s.png"))
    assert (page.body.get("data-images-total"), page.body.get("data-images-loaded")) == ("2", "1")
