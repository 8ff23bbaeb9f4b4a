"""Profiles: statistics against brute-force oracles, sampling, JSON round trips, merging."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.monitoring.profile import (
    GRID_SIZE,
    GroupProfile,
    merge_profiles,
    profile_frame,
)
from tests.monitoring.conftest import transactions, transactions_schema

ONE_NUMBER = FeatureGroupSchema("g", entity_keys=["id"], features=[FeatureSchema("x", DataType.DOUBLE)])

values_with_nulls = st.lists(
    st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-5, 5).map(float)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(values_with_nulls)
def test_numeric_profile_matches_brute_force(values: list[float | None]) -> None:
    frame = pl.DataFrame({"id": range(len(values)), "x": values}, schema={"id": pl.Int64, "x": pl.Float64})
    profile = profile_frame(ONE_NUMBER, frame)[0].feature("x")
    present = sorted(v for v in values if v is not None)
    assert (profile.rows, profile.count) == (len(values), len(present))
    assert profile.null_rate == pytest.approx((len(values) - len(present)) / len(values))
    if not present:
        assert profile.quantiles == () and profile.min is None
        return
    assert profile.min == present[0] and profile.max == present[-1]
    assert profile.mean == pytest.approx(statistics.fmean(present), rel=1e-9, abs=1e-6)
    if len(present) > 1:
        assert profile.std == pytest.approx(statistics.stdev(present), rel=1e-6, abs=1e-6)
    assert len(profile.quantiles) == GRID_SIZE + 1
    for i, (q, share) in enumerate(zip(profile.quantiles, profile.cdf, strict=True)):
        assert q == present[math.floor(i / GRID_SIZE * (len(present) - 1))]  # "lower" quantiles
        assert share == sum(v <= q for v in present) / len(present)  # exact empirical CDF
    assert sum(profile.histogram) == pytest.approx(1.0)
    edges = profile.histogram_edges
    for k, share in enumerate(profile.histogram):
        inside = [v for v in present if (edges[k] <= v if k == 0 else edges[k] < v) and v <= edges[k + 1]]
        assert share == pytest.approx(len(inside) / len(present))


def test_nan_counts_as_null_and_int_features_are_numeric() -> None:
    schema = FeatureGroupSchema(
        "g",
        entity_keys=["id"],
        features=[FeatureSchema("x", DataType.DOUBLE), FeatureSchema("n", DataType.INT)],
    )
    frame = pl.DataFrame(
        {"id": [1, 2, 3], "x": [1.0, float("nan"), None], "n": [1, 2, 2]}, schema_overrides={"n": pl.Int32}
    )
    profile, _ = profile_frame(schema, frame)
    assert profile.feature("x").count == 1 and profile.feature("x").null_rate == pytest.approx(2 / 3)
    n = profile.feature("n")
    assert n.kind == "numeric" and n.quantile(0.5) == 2.0 and n.cdf_at(1.0) == pytest.approx(1 / 3)


def test_categorical_profile_counts_and_breaks_ties_by_value() -> None:
    schema = FeatureGroupSchema(
        "g",
        entity_keys=["id"],
        features=[
            FeatureSchema("c", DataType.STRING),
            FeatureSchema("b", DataType.BOOLEAN),
            FeatureSchema("code", DataType.INT, FeatureType.CATEGORICAL),
        ],
    )
    frame = pl.DataFrame(
        {
            "id": range(7),
            "c": ["z", "y", "x", "y", "x", None, "w"],
            "b": [True] * 5 + [False, None],
            "code": [7, 7, 7, 1, 1, 2, None],
        },
        schema_overrides={"code": pl.Int32},
    )
    profile, _ = profile_frame(schema, frame, top_categories=2)
    c = profile.feature("c")
    assert c.top_categories == (("x", 2), ("y", 2)) and c.distinct_count == 4 and c.count == 6
    assert profile.feature("b").top_categories == (("true", 5), ("false", 1))
    assert profile.feature("code").kind == "categorical"
    assert profile.feature("code").top_categories == (("7", 3), ("1", 2))


def test_complex_and_time_features_get_counts_only_and_event_time_range_is_kept() -> None:
    frame = transactions(50, seed=1)
    profile, _ = profile_frame(transactions_schema(), frame)
    tags = profile.feature("tags")
    assert (tags.kind, tags.count, tags.quantiles, tags.top_categories) == ("other", 50, (), ())
    assert profile.event_time_min == frame["event_time"].min()
    assert profile.event_time_max == frame["event_time"].max()


def test_sampled_category_counts_are_scaled_to_the_write() -> None:
    schema = transactions_schema()
    frame = transactions(20_000, seed=5)
    exact = profile_frame(schema, frame)[0].feature("channel")
    sampled = profile_frame(schema, frame, sample_rows=4_000)[0].feature("channel")
    assert sampled.count == exact.count == 20_000 and sampled.sampled == 4_000
    assert [v for v, _ in sampled.top_categories] == [v for v, _ in exact.top_categories]
    for (_, n), (_, m) in zip(sampled.top_categories, exact.top_categories, strict=True):
        assert abs(n - m) / exact.count < 0.03


def test_sampling_keeps_counts_exact_and_distributions_close() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=30_000)
    values[::10] = np.nan
    frame = pl.DataFrame({"id": range(30_000), "x": values})
    exact = profile_frame(ONE_NUMBER, frame, sample_rows=100_000)[0].feature("x")
    sampled = profile_frame(ONE_NUMBER, frame, sample_rows=5_000)[0].feature("x")
    assert (sampled.count, sampled.min, sampled.max) == (exact.count, exact.min, exact.max)
    assert sampled.mean == pytest.approx(exact.mean) and sampled.std == pytest.approx(exact.std)
    assert sampled.sampled < exact.sampled == exact.count
    assert max(abs(sampled.cdf_at(q) - exact.cdf_at(q)) for q in exact.quantiles) < 0.03
    again = profile_frame(ONE_NUMBER, frame, sample_rows=5_000)[0].feature("x")
    assert again == sampled  # the sample is seeded: profiles are reproducible


def test_observed_shares_are_measured_on_the_reference_grid() -> None:
    schema = transactions_schema()
    reference, _ = profile_frame(schema, transactions(2_000, seed=1))
    current = transactions(3_000, seed=2, shift=0.5)
    _, observed = profile_frame(schema, current, reference=reference)
    amounts = current["amount"].to_list()
    grid = reference.feature("amount").quantiles
    assert observed["amount"] == tuple(sum(a <= g for a in amounts) / len(amounts) for g in grid)
    names = [v for v, _ in reference.feature("channel").top_categories]
    counts = current["channel"].value_counts()
    share = {r["channel"]: r["count"] / current.height for r in counts.iter_rows(named=True)}
    assert observed["channel"] == pytest.approx(tuple(share.get(v, 0.0) for v in names))
    assert "tags" not in observed


def test_profiles_round_trip_through_json() -> None:
    frame = transactions(500, seed=4)
    frame = frame.with_columns(
        pl.when(pl.col("transaction_id") == 0).then(float("inf")).otherwise(pl.col("amount")).alias("amount")
    )
    profile, _ = profile_frame(transactions_schema(), frame)
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert GroupProfile.from_dict(json.loads(text)) == profile
    summary = profile.to_polars()
    assert summary["feature"].to_list() == ["amount", "items", "channel", "is_fraud", "tags"]


def test_merge_profiles_combines_moments_exactly_and_cdf_closely() -> None:
    schema = transactions_schema()
    parts = [transactions(1_000, seed=s, shift=0.3 * s) for s in range(3)]
    merged = merge_profiles([profile_frame(schema, p)[0] for p in parts])
    whole = profile_frame(schema, pl.concat(parts))[0]
    a, b = merged.feature("amount"), whole.feature("amount")
    assert (a.rows, a.count, a.min, a.max) == (b.rows, b.count, b.min, b.max)
    assert a.mean == pytest.approx(b.mean) and a.std == pytest.approx(b.std)
    assert max(abs(a.cdf_at(q) - b.cdf_at(q)) for q in b.quantiles) < 0.02
    assert dict(merged.feature("channel").top_categories) == dict(whole.feature("channel").top_categories)
    assert merged.event_time_min == whole.event_time_min and merged.rows == 3_000


def test_profiling_a_frame_without_a_feature_names_it() -> None:
    with pytest.raises(SchemaValidationError, match="x"):
        profile_frame(ONE_NUMBER, pl.DataFrame({"id": [1]}))
    with pytest.raises(SchemaValidationError, match="empty"):
        merge_profiles([])
