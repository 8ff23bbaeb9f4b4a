"""Property tests: the store's point-in-time reads agree with the brute-force oracle.

Data is written in several appends, so ties of equal event (and created) times are broken by
write order, which the oracle sees as row position in the concatenated writes.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
from tauro_workbench.engines.pit import PointInTimeSpec
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tests.pit_oracle import oracle_latest, oracle_point_in_time

UTC = UTC
BASE = datetime(2025, 3, 30, tzinfo=UTC)
FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "k": pl.Int64(),
    "ts": pl.Datetime("us", "UTC"),
    "created": pl.Datetime("us", "UTC"),
    "value": pl.Float64(),
    "label": pl.String(),
}


def hours(n: int) -> datetime:
    return BASE + timedelta(hours=n)


@st.composite
def batches(draw: st.DrawFn) -> list[pl.DataFrame]:
    """One to three writes of rows on a coarse grid (frequent ties, ttl boundaries)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        rows = [
            {
                "k": draw(st.integers(0, 3)),
                "ts": hours(draw(st.integers(0, 12))),
                "created": hours(draw(st.integers(0, 1))),
                "value": draw(st.none() | st.floats(-5, 5, allow_nan=False)),
                "label": draw(st.none() | st.sampled_from(["a", "b"])),
            }
            for _ in range(draw(st.integers(0, 10)))
        ]
        out.append(pl.DataFrame(rows, schema=FEATURE_SCHEMA, orient="row"))
    return out


@st.composite
def entities(draw: st.DrawFn) -> pl.DataFrame:
    """Entity rows: key 4 has no history, times before any feature, duplicates, naive or aware."""
    n = draw(st.integers(0, 10))
    ks = [draw(st.none() | st.integers(0, 4)) for _ in range(n)]
    times = [hours(draw(st.integers(-2, 14))) if draw(st.integers(0, 12)) else None for _ in range(n)]
    ts = pl.Series("when", times, dtype=pl.Datetime("us", "UTC"))
    if draw(st.booleans()):
        ts = ts.dt.replace_time_zone(None)
    return pl.DataFrame({"k": pl.Series(ks, dtype=pl.Int64), "when": ts}).with_row_index("row_id")


def build_store(
    root: Path, *, ttl: timedelta | None, created: bool, writes: list[pl.DataFrame]
) -> MaterializedFeatureStore:
    store = MaterializedFeatureStore(storage_path=root, config={"drift": {"enabled": False}})
    store.register_features(
        FeatureGroupSchema(
            name="g",
            entity_keys=["k"],
            timestamp_key="ts",
            created_timestamp_key="created" if created else None,
            ttl=ttl,
            features=[FeatureSchema("value", DataType.DOUBLE), FeatureSchema("label", DataType.STRING)],
        )
    )
    for batch in writes:
        store.write_features("g", batch if created else batch.drop("created"))
    return store


def oracle_spec(*, ttl: timedelta | None, created: bool, entity_time: str = "when") -> PointInTimeSpec:
    # no _tauro_seq: the oracle's final tie-break (row position) is the write order
    return PointInTimeSpec(
        entity_keys=("k",),
        entity_time=entity_time,
        event_time="ts",
        feature_columns=("value", "label"),
        ttl=ttl,
        tie_breakers=("created",) if created else (),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=batches(),
    entity=entities(),
    ttl=st.sampled_from([None, timedelta(hours=3)]),
    created=st.booleans(),
)
def test_historical_features_match_the_oracle(
    writes: list[pl.DataFrame], entity: pl.DataFrame, ttl: timedelta | None, created: bool
) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = build_store(Path(root), ttl=ttl, created=created, writes=writes)
        got = store.get_historical_features(entity, ["value", "label"], timestamp_column="when").collect()
    history = pl.concat(writes)
    expected = oracle_point_in_time(entity, history, oracle_spec(ttl=ttl, created=created))
    assert_frame_equal(got, expected)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=batches(),
    wanted=st.lists(st.integers(0, 4), max_size=6),
    at=st.integers(-1, 14).map(hours),
    ttl=st.sampled_from([None, timedelta(hours=3)]),
    created=st.booleans(),
)
def test_latest_values_match_the_oracle(
    writes: list[pl.DataFrame], wanted: list[int], at: datetime, ttl: timedelta | None, created: bool
) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = build_store(Path(root), ttl=ttl, created=created, writes=writes)
        requested = store.get_features(
            ["value", "label"], entity_ids={"k": wanted}, point_in_time=at
        ).collect()
        every = store.get_features(["value", "label"], point_in_time=at).collect()
    history = pl.concat(writes)
    spec = oracle_spec(ttl=ttl, created=created)
    ids = pl.DataFrame({"k": pl.Series(wanted, dtype=pl.Int64)})
    expected = oracle_latest(history, spec, as_of=at, entities=ids).drop("ts")
    assert_frame_equal(requested, expected)
    # every entity: those with a live value, sorted by key
    expected_every = oracle_latest(history, spec, as_of=at).drop("ts")
    assert_frame_equal(every, expected_every)
