"""marimo views resolved lazily from core objects (``_display_``)."""

from __future__ import annotations

from dataclasses import replace

import marimo as mo

from tauro_workbench.monitoring.drift import DriftReport
from tests import display_objects as objects


def test_a_drift_report_in_marimo_is_the_table_with_an_altair_chart() -> None:
    view = objects.drift_report()._display_()
    text = view.text
    assert "tauro-drift-report" in text and "application/vnd.vegalite" in text
    assert "tauro-psi-chart" not in text  # the Altair chart replaces the stdlib one


def test_reports_without_a_chart_or_broken_ones_still_display() -> None:
    first = DriftReport("g", 1, "no_reference", "nothing (first write)")._display_()
    assert isinstance(first, mo.Html) and "No features compared" in first.text
    broken = replace(objects.drift_report(), features=(None,))  # type: ignore[arg-type]
    assert broken._display_().text.startswith("<pre>")
