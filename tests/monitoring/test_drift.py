"""Drift statistics against hand-computed values and scipy; the DriftReport object."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
from tauro_workbench.config import DriftConfig, DriftThresholds
from tauro_workbench.monitoring.drift import (
    PSI_EPSILON,
    DriftReport,
    FeatureDrift,
    compare_profiles,
    psi,
)
from tauro_workbench.monitoring.profile import profile_frame
from tests.monitoring.conftest import transactions, transactions_schema

NUMBER = FeatureGroupSchema("g", entity_keys=["id"], features=[FeatureSchema("x", DataType.DOUBLE)])
CATEGORY = FeatureGroupSchema("g", entity_keys=["id"], features=[FeatureSchema("c", DataType.STRING)])


def numbers(values: Sequence[float] | np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": range(len(values)), "x": list(map(float, values))}, schema={"id": pl.Int64, "x": pl.Float64}
    )


def check(
    schema: FeatureGroupSchema,
    ref_frame: pl.DataFrame,
    cur_frame: pl.DataFrame,
    config: DriftConfig | None = None,
) -> DriftReport:
    reference, _ = profile_frame(schema, ref_frame)
    current, observed = profile_frame(schema, cur_frame, reference=reference)
    # min_rows=0: these tests judge the statistics themselves, on frames of any size.
    return compare_profiles(reference, current, config or DriftConfig(min_rows=0), observed=observed)


def test_psi_matches_hand_computed_values() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    # an empty bin is floored at epsilon: (0.1 - eps) ln(0.1 / eps) for the third bin
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - PSI_EPSILON) * math.log(0.1 / PSI_EPSILON)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(expected)
    assert psi([0.2, 0.8, 0.0], [0.2, 0.8, 0.0]) == 0.0
    with pytest.raises(ValueError, match="aligned"):
        psi([1.0], [0.5, 0.5])


def test_numeric_psi_on_reference_deciles_by_hand() -> None:
    # reference 0..99: decile cuts at 9, 19, ..., 89, every bin holds 10%;
    # current 0..49 twice: 20% in each of the first five bins, nothing above 49
    report = check(NUMBER, numbers(list(range(100))), numbers(list(range(50)) * 2))
    x = report.feature("x")
    assert x.bins[0] == "<= 9" and x.bins[-1] == "> 89" and len(x.bins) == 10
    assert x.reference_share == pytest.approx((0.1,) * 10)
    assert x.current_share == pytest.approx((0.2,) * 5 + (0.0,) * 5)
    expected = 5 * 0.1 * math.log(2) + 5 * (PSI_EPSILON - 0.1) * math.log(PSI_EPSILON / 0.1)
    assert x.psi == pytest.approx(expected)
    assert x.ks == pytest.approx(0.5)  # at 49: F_ref = 0.5, F_cur = 1.0
    assert x.verdict == "drift" and report.verdict == "drift"


def test_categorical_psi_by_hand_with_a_new_category_in_other() -> None:
    ref = pl.DataFrame({"id": range(100), "c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    cur = pl.DataFrame({"id": range(100), "c": ["a"] * 30 + ["b"] * 30 + ["c"] * 30 + ["d"] * 10})
    c = check(CATEGORY, ref, cur).feature("c")
    assert c.bins == ("a", "b", "c", "(other)")
    assert c.reference_share == pytest.approx((0.5, 0.3, 0.2, 0.0))
    assert c.current_share == pytest.approx((0.3, 0.3, 0.3, 0.1))
    expected = (
        (0.3 - 0.5) * math.log(0.3 / 0.5)
        + (0.3 - 0.2) * math.log(0.3 / 0.2)
        + (0.1 - PSI_EPSILON) * math.log(0.1 / PSI_EPSILON)
    )
    assert c.psi == pytest.approx(expected) and c.ks is None and c.verdict == "drift"
    mild = pl.DataFrame({"id": range(100), "c": ["a"] * 40 + ["b"] * 35 + ["c"] * 25})
    assert check(CATEGORY, ref, mild).feature("c").verdict == "ok"


@pytest.mark.parametrize(
    ("shift", "scale", "seed"), [(0.0, 1.0, 1), (0.1, 1.0, 2), (0.3, 1.0, 3), (0.0, 1.5, 4), (1.0, 0.5, 5)]
)
def test_ks_matches_scipy_within_the_grid_resolution(shift: float, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 20_000), rng.normal(shift, scale, 15_000)
    ours = check(NUMBER, numbers(a), numbers(b)).feature("x").ks
    exact = stats.ks_2samp(a, b).statistic
    assert ours is not None
    assert ours <= exact + 1e-12  # evaluated on the reference grid: a lower bound
    assert exact - ours <= 0.011  # ... within the largest reference mass between grid values


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(-20, 20), min_size=1, max_size=80),
    st.lists(st.integers(-20, 20), min_size=1, max_size=80),
)
def test_ks_is_a_tight_lower_bound_of_the_exact_statistic(ref: list[int], cur: list[int]) -> None:
    report = check(NUMBER, numbers(ref), numbers(cur))
    ours = report.feature("x").ks
    points = sorted(set(ref) | set(cur))
    exact = max(
        abs(sum(r <= p for r in ref) / len(ref) - sum(c <= p for c in cur) / len(cur)) for p in points
    )
    reference = profile_frame(NUMBER, numbers(ref))[0].feature("x")
    gaps = [b - a for a, b in zip(reference.cdf, reference.cdf[1:], strict=False)]
    bound = max([*gaps, reference.cdf[0]])
    assert ours is not None and ours <= exact + 1e-12 and exact - ours <= bound + 1e-12


def test_identical_data_reports_no_drift() -> None:
    frame = transactions(5_000, seed=7)
    report = check(transactions_schema(), frame, frame)
    assert report.verdict == "ok"
    for item in report.features:
        assert item.psi in (0.0, None) and item.ks in (0.0, None) and item.null_rate_change == 0.0


def test_same_distribution_new_sample_is_ok_and_shifted_one_drifts() -> None:
    schema = transactions_schema()
    base = transactions(20_000, seed=1)
    assert check(schema, base, transactions(20_000, seed=2)).verdict == "ok"
    shifted = check(schema, base, transactions(20_000, seed=3, shift=0.5))
    assert shifted.verdict == "drift"
    assert set(shifted.drifted) >= {"amount", "channel"}
    assert shifted.feature("is_fraud").verdict == "ok"


def test_null_rate_change_drifts_and_thresholds_apply_per_group_and_feature() -> None:
    ref = numbers(list(range(100)))
    cur = pl.DataFrame({"id": range(100), "x": [float(i) if i % 4 else None for i in range(100)]})
    report = check(NUMBER, ref, cur)
    assert report.feature("x").null_rate_change == pytest.approx(0.25)
    assert report.feature("x").verdict == "drift" and "null rate" in report.feature("x").reasons[-1]
    lenient = DriftThresholds(null_rate_change=0.5, psi_warning=5, psi_drift=10, ks_drift=1)
    assert check(NUMBER, ref, cur, DriftConfig(overrides={"g": lenient})).verdict == "ok"
    strict = DriftThresholds(psi_warning=0.0001, psi_drift=0.5, null_rate_change=1)
    config = DriftConfig(overrides={"g": lenient, "g.x": strict})
    assert config.thresholds_for("g", "x") is strict
    assert (
        check(NUMBER, numbers(list(range(100))), numbers(list(range(1, 101))), config).feature("x").verdict
        == "warning"
    )


def test_small_writes_are_not_judged_below_min_rows() -> None:
    report = check(NUMBER, numbers([1, 2, 3]), numbers([7, 8, 9]), DriftConfig(min_rows=10))
    assert report.verdict == "insufficient_data" and report.features == ()


def test_compare_without_observations_reads_the_current_profile() -> None:
    schema = transactions_schema()
    reference = profile_frame(schema, transactions(5_000, seed=1))[0]
    current, observed = profile_frame(schema, transactions(5_000, seed=2, shift=0.3), reference=reference)
    exact = compare_profiles(reference, current, DriftConfig(), observed=observed)
    approx = compare_profiles(reference, current, DriftConfig())
    for name in ("amount", "items", "channel"):
        assert approx.feature(name).psi == pytest.approx(exact.feature(name).psi, abs=0.02)


def test_report_round_trips_and_converts() -> None:
    report = check(transactions_schema(), transactions(2_000, seed=1), transactions(2_000, seed=2, shift=0.5))
    again = DriftReport.from_dict(json.loads(json.dumps(report.to_dict(), allow_nan=False)))
    assert again == report
    frame = report.to_polars()
    assert frame.columns == ["feature", "kind", "psi", "ks", "null_rate_change", "verdict", "reasons"]
    assert frame.filter(pl.col("feature") == "amount")["verdict"].item() == "drift"
    assert report.max_psi == max(f.psi for f in report.features if f.psi is not None)
    with pytest.raises(KeyError, match="amount"):
        report.feature("nope")
    assert "verdict='drift'" in repr(report)


def test_repr_html_escapes_and_never_raises() -> None:
    item = FeatureDrift("<b>x</b>", "numeric", 0.5, 0.3, 0.0, "drift", ("psi 0.5 >= 0.25",))
    report = DriftReport("g", 1, "drift", "previous write #1 <script>", (item,), rows=10, reference_rows=10)
    page = report._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<script>" not in page and "0.5000" in page
    broken = DriftReport("g", 1, "drift", "ref", features=(None,))  # type: ignore[arg-type]
    assert broken._repr_html_().startswith("<pre>")
    assert "DriftReport" in repr(broken)
