"""The report (docs/method.md §8): one self-contained HTML page with a model's (and its baseline's) metrics and
pictures."""

from explainface.report.html import SECTIONS, render_report, report_html

__all__ = ["SECTIONS", "render_report", "report_html"]
