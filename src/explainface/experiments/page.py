"""The experiment's page: the paper's tables over seeds, learning curves of every run, a gallery per method, the
command that reproduces it. One self-contained file, built from results.json and PNG paths with the report's
styles, image embedding and Content-Security-Policy (`explainface.report.html`).
"""

from __future__ import annotations

from pathlib import Path

from explainface.report.html import esc, figure_html, page_html, write_page

#: Section ids and titles, in page order (stable: links and tests use them).
EXPERIMENT_SECTIONS: tuple[tuple[str, str], ...] = (
    ("setup", "Setup"),
    ("tables", "Tables"),
    ("curves", "Learning curves"),
    ("galleries", "Galleries"),
    ("reproduce", "Reproduce"),
)


def _table_html(t) -> str:
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in t.columns)
    rows = []
    for label, cells in t.rows:
        tds = "".join(f'<td class="num{" better" if c.better else ""}">{esc(c.text)}</td>' for c in cells)
        rows.append(f'<tr><th scope="row">{esc(label)}</th>{tds}</tr>')
    return (
        f"<h3>{esc(t.caption)}</h3>\n"
        f'<table id="table-{esc(t.id)}" class="metrics"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + f'</tbody></table>\n<p class="hint">{esc(t.note)}</p>'
    )


def _setup(results: dict) -> str:
    plan = results["plan"]
    rows = [
        ("Methods", ", ".join(plan["methods"])),
        ("Reference for paired tests", results.get("reference", "")),
        ("Seeds", ", ".join(map(str, plan["seeds"]))),
        ("Network", f"{plan['model']} width {plan['width']:g} at {plan['input_size']} px"),
        ("Steps per run", f"{plan['steps']} of batch {plan['batch_size']}"),
        ("Training data", plan["data"]),
        ("Evaluation sets", ", ".join(plan["eval_sets"])),
        ("PE/AR draws", f"{plan['images']} images x {plan['runs']} runs"),
        ("Finished runs", ", ".join(f"{m}: {r['n']}/{len(plan['seeds'])}" for m, r in results["methods"].items())),
    ]
    body = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in rows)
    return f'<table id="setup-table"><tbody>{body}</tbody></table>'


def experiment_html(results: dict, curves: str | Path | None = None, galleries: dict | None = None,
                    gallery_set: str | None = None) -> str:  # fmt: skip
    """The page as a string (see `render_experiment`)."""
    from explainface.experiments.tables import build_tables, dictionary_table

    title = results.get("title") or "explainface experiment"
    tables = build_tables(results)
    dictionary = dictionary_table(results)
    tables += [dictionary] if dictionary else []
    parts = {
        "setup": _setup(results),
        "tables": "\n".join(_table_html(t) for t in tables) or '<p class="missing">No metrics yet.</p>',
        "curves": figure_html("Training curves", "every run: one colour per method, one line per seed", curves,
                              wide=True)
        if curves
        else '<p class="missing">No curves.</p>',
    }
    items = []
    for method, pics in (galleries or {}).items():
        for key, caption in (("gallery", "top-10% overlays of the most active channels (paper Figure 6)"),
                             ("channel_dictionary", "each channel's dominant part"),
                             ("average_peaks", "each channel's mean peak and its spread over the faces (Yin et "
                              "al.'s average location)")):  # fmt: skip
            if pics.get(key):
                items.append(figure_html(f"{method}, seed 0: {key.replace('_', ' ')}",
                                     f"{caption}, on {gallery_set}", pics[key]))  # fmt: skip
    parts["galleries"] = (
        '<div class="grid">' + "\n".join(items) + "</div>"
        if items
        else ('<p class="missing">No faces set to draw galleries on.</p>')
    )
    cmd = results.get("command") or ""
    parts["reproduce"] = f"<p>Run from the repository root; re-running continues a killed experiment:</p>\n<pre>" \
                         f"{esc(cmd)}</pre>"  # fmt: skip
    nav = "<nav>" + " ".join(f'<a href="#{sid}">{esc(t)}</a>' for sid, t in EXPERIMENT_SECTIONS) + "</nav>"
    sections = "\n".join(
        f'<section>\n<h2 id="{sid}">{esc(t)}</h2>\n{parts[sid]}\n</section>' for sid, t in EXPERIMENT_SECTIONS
    )
    return page_html(title, f"<header><h1>{esc(title)}</h1></header>\n{nav}\n{sections}")


def render_experiment(results: dict, out_html: str | Path, curves: str | Path | None = None,
                      galleries: dict | None = None, gallery_set: str | None = None) -> Path:  # fmt: skip
    """Write the experiment page to `out_html` (atomically); `galleries` is {method: {"gallery": png, ...}}."""
    return write_page(experiment_html(results, curves, galleries, gallery_set), out_html)


__all__ = ["EXPERIMENT_SECTIONS", "experiment_html", "render_experiment"]
