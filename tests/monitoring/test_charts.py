"""Drift charts (Altair) and their offline export; altair stays out of the core imports."""

from __future__ import annotations

import subprocess
import sys

import altair as alt
import pytest

from tauro_workbench.config import DriftThresholds
from tauro_workbench.exceptions import ConfigurationError, FeatureNotFoundError
from tauro_workbench.monitoring import DriftReport, WriteMonitor
from tauro_workbench.notebook import charts
from tests.monitoring.conftest import transactions
from tests.monitoring.test_monitor import write


@pytest.fixture
def report(monitor: WriteMonitor, schema: object) -> DriftReport:
    for seed, shift in ((1, 0.0), (2, 0.0), (3, 0.5)):
        _, last = write(monitor, schema, transactions(2_000, seed=seed, shift=shift))  # type: ignore[arg-type]
    assert last is not None
    return last


def values(chart: alt.TopLevelMixin) -> list[dict[str, object]]:
    spec = chart.to_dict()
    if "data" in spec:  # Altair hoists data shared by every layer to the top
        return list(spec["data"]["values"])
    return [row for layer in spec["layer"] for row in layer["data"]["values"]]


def test_drift_overview_has_a_bar_per_feature_and_threshold_ticks(report: DriftReport) -> None:
    chart = charts.drift_overview(report)
    assert isinstance(chart, alt.LayerChart)
    rows = values(chart)
    assert {r["feature"] for r in rows} == {"amount", "items", "channel", "is_fraud"}
    assert {r["psi_drift"] for r in rows} == {0.25}
    marks = [layer["mark"]["type"] for layer in chart.to_dict()["layer"]]
    assert marks == ["bar", "tick", "tick"]


def test_distribution_compares_reference_and_current_shares(report: DriftReport) -> None:
    chart = charts.distribution(report, "amount")
    assert isinstance(chart, alt.Chart)
    rows = values(chart)
    amount = report.feature("amount")
    assert [r["share"] for r in rows if r["side"] == "reference"] == list(amount.reference_share)
    assert [r["share"] for r in rows if r["side"] == "current"] == list(amount.current_share)
    assert charts.distribution(report, "channel").to_dict()["encoding"]["x"]["title"] == "category"
    with pytest.raises(FeatureNotFoundError, match="tags"):
        charts.distribution(report, "tags")


def test_psi_over_time_reads_the_stored_reports(report: DriftReport, monitor: WriteMonitor) -> None:
    chart = charts.psi_over_time(
        monitor.metadata, "transactions", features=["amount"], thresholds=DriftThresholds(psi_drift=0.3)
    )
    lines, rules = chart.to_dict()["layer"]
    assert [r["feature"] for r in lines["data"]["values"]] == ["amount", "amount"]
    assert [r["psi"] for r in rules["data"]["values"]] == [0.1, 0.3]
    frame = monitor.drift_history("transactions")
    assert charts.psi_over_time(frame).to_dict()["title"] == "PSI over time"
    with pytest.raises(ConfigurationError, match="group"):
        charts.psi_over_time(monitor.metadata)


def test_charts_export_to_svg_and_png_offline(report: DriftReport) -> None:
    chart = charts.drift_overview(report)
    svg = charts.to_svg(chart)
    assert svg.lstrip().startswith("<svg") and "amount" in svg
    assert charts.to_png(charts.distribution(report, "amount")).startswith(b"\x89PNG\r\n\x1a\n")


def test_core_imports_do_not_import_altair() -> None:
    code = (
        "import sys, tauro_workbench, tauro_workbench.monitoring, tauro_workbench.notebook;"
        "bad = [m for m in ('altair', 'vl_convert', 'marimo', 'anywidget') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
