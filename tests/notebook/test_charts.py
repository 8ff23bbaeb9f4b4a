"""The drift charts' readability fixes: one meaning per colour, readable axis labels, a chart per feature."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tauro_workbench.exceptions import ConfigurationError, FeatureNotFoundError
from tauro_workbench.notebook import charts
from tests import display_objects as objects

VERDICT_RANGE = ["#2e7d32", "#ef6c00", "#c62828"]

HISTORY = pl.DataFrame(
    {
        "write_id": [2, 3, 4, 2, 3, 4],
        "feature": ["amount"] * 3 + ["plan"] * 3,
        "psi": [0.01, 0.02, 0.41, 0.0, 0.12, None],
        "ks": [0.01, 0.03, 0.28, None, None, None],
        "verdict": ["ok", "ok", "drift", "ok", "warning", "ok"],
        "written_at": [objects.T0] * 6,
    }
)


def rows(chart: dict[str, Any], *levels: dict[str, Any]) -> list[dict[str, Any]]:
    """The data rows of the innermost level that has data (inline, or hoisted into the datasets)."""
    data = next(level["data"] for level in reversed(levels) if "data" in level)
    return list(data["values"]) if "values" in data else list(chart["datasets"][data["name"]])


def test_verdict_colours_mean_verdicts_only() -> None:
    overview = charts.drift_overview(objects.drift_report()).to_dict()
    ticks = [layer["mark"]["color"] for layer in overview["layer"][1:]]
    assert not set(ticks) & set(VERDICT_RANGE)  # thresholds are grey, not "warning"/"drift" colours
    over_time = charts.psi_over_time(HISTORY).to_dict()
    rules = over_time["layer"][1]["encoding"]["color"]["scale"]["range"]
    assert not set(rules) & set(VERDICT_RANGE)


def test_feature_over_time_has_a_panel_per_statistic_with_its_own_colour() -> None:
    chart = charts.feature_over_time(HISTORY, "g", "amount").to_dict()
    psi_panel, ks_panel = chart["vconcat"]
    assert psi_panel["title"] == "amount: PSI" and ks_panel["title"] == "amount: KS"
    psi_line, ks_line = psi_panel["layer"][0]["mark"]["color"], ks_panel["layer"][0]["mark"]["color"]
    assert psi_line != ks_line and not {psi_line, ks_line} & set(VERDICT_RANGE)
    assert [r["value"] for r in rows(chart, ks_panel, ks_panel["layer"][0])] == [0.01, 0.03, 0.28]
    thresholds = [layer["mark"]["color"] for layer in psi_panel["layer"][2:]]
    assert (
        len(thresholds) == 2 and not set(thresholds) & set(VERDICT_RANGE) and len(ks_panel["layer"]) == 2
    )  # no PSI thresholds on the KS axis
    assert charts.to_svg(charts.feature_over_time(HISTORY, "g", "amount")).lstrip().startswith("<svg")


def test_feature_over_time_errors_name_what_is_missing() -> None:
    with pytest.raises(FeatureNotFoundError, match="amount"):
        charts.feature_over_time(HISTORY, "g", "nope")
    with pytest.raises(ConfigurationError, match="feature="):
        charts.feature_over_time(HISTORY, "g")
    with pytest.raises(ConfigurationError, match="group="):
        charts.feature_over_time(objects.registry(), feature="amount")


def test_axis_labels_do_not_overlap() -> None:
    bins = charts.distribution(objects.drift_report(), "amount").to_dict()["encoding"]["x"]["axis"]
    assert bins["labelAngle"] == -35 and bins["labelLimit"] >= 120
    overview = charts.drift_overview(objects.drift_report()).to_dict()
    assert overview["layer"][0]["encoding"]["y"]["axis"]["labelLimit"] >= 120
    x = charts.psi_over_time(HISTORY).to_dict()["layer"][0]["encoding"]["x"]["axis"]
    assert x["labelAngle"] == 0 and x["labelOverlap"] == "parity"
