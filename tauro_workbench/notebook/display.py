"""marimo views of core objects that are richer with the notebook extra (Altair charts).

Core classes resolve these lazily from ``_display_`` (marimo's display protocol), so
``import tauro_workbench`` never imports marimo or altair. Each view falls back to the
object's stdlib HTML display if a chart cannot be built.

Example:
    >>> report = wb.drift("user_txn_daily")   # doctest: +SKIP
    >>> drift_view(report)                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from tauro_workbench import displays
from tauro_workbench import html as h

__all__ = ["drift_view"]


def drift_view(report: Any) -> Any:
    """Return a marimo view of a ``DriftReport``: the verdict table above the Altair PSI chart."""
    import marimo as mo

    try:
        from tauro_workbench.notebook import charts

        table = displays.drift_report_html(report, chart=False)
        if not any(getattr(f, "psi", None) is not None for f in report.features):
            return mo.Html(table)
        return mo.vstack([mo.Html(table), charts.drift_overview(report)])
    except Exception:  # a display never raises: fall back to the stdlib display
        return mo.Html(h.render(displays.drift_report_html, report))
