"""Contract suite of the point-in-time join: every engine against the brute-force oracle."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tauro_workbench.engines.pit import IN_MEMORY_ROWS, PitEngine, PointInTimeSpec, point_in_time_join
from tests.engines.conftest import PitRunner, like
from tests.pit_oracle import oracle_point_in_time

UTC = UTC
# Europe/Paris switches to summer time at 01:00 UTC on this day: zone handling is exercised.
BASE = datetime(2025, 3, 30, tzinfo=UTC)
TIME_MODES = ("naive_us", "utc_ms", "paris_ns", "date")


def hours(n: int) -> datetime:
    return BASE + timedelta(hours=n)


def entity_times(instants: list[datetime | None], mode: str) -> pl.Series:
    """Entity times as the given mode's dtype (all denote the same UTC instants)."""
    series = pl.Series("ts", instants, dtype=pl.Datetime("us", "UTC"))
    if mode == "naive_us":
        return series.dt.replace_time_zone(None)
    if mode == "utc_ms":
        return series.dt.cast_time_unit("ms")
    if mode == "paris_ns":
        return series.dt.convert_time_zone("Europe/Paris").dt.cast_time_unit("ns")
    return series.dt.date()


@st.composite
def feature_frames(draw: st.DrawFn, keys: tuple[str, ...], *, prefix: str = "") -> pl.DataFrame:
    """Feature rows on a coarse hour grid, so ties and ttl boundaries are frequent."""
    n = draw(st.integers(0, 24))
    rows = []
    for _ in range(n):
        rows.append(
            {
                "k": draw(st.none() | st.integers(0, 3)) if "k" in keys else None,
                "region": draw(st.sampled_from(["eu", "us", None])),
                "event_time": hours(draw(st.integers(0, 30))) if draw(st.integers(0, 20)) else None,
                "created": draw(st.none() | st.integers(0, 2).map(hours)),
                "_tauro_seq": draw(st.none() | st.integers(0, 2)),
                f"{prefix}value": draw(st.none() | st.floats(-5, 5, allow_nan=False, width=32)),
                f"{prefix}label": draw(st.none() | st.sampled_from(["a", "b"])),
            }
        )
    schema: dict[str, pl.DataType] = {
        "k": pl.Int64(),
        "region": pl.String(),
        "event_time": pl.Datetime("us", "UTC"),
        "created": pl.Datetime("us", "UTC"),
        "_tauro_seq": pl.Int64(),
        f"{prefix}value": pl.Float64(),
        f"{prefix}label": pl.String(),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


@st.composite
def entity_frames(draw: st.DrawFn) -> pl.DataFrame:
    """Entity rows: keys 4 has no history, times may precede every feature row, duplicates."""
    n = draw(st.integers(0, 12))
    mode = draw(st.sampled_from(TIME_MODES))
    key_dtype = draw(st.sampled_from([pl.Int32, pl.Int64]))
    ks = [draw(st.none() | st.integers(0, 4)) for _ in range(n)]
    regions = [draw(st.sampled_from(["eu", "us", None])) for _ in range(n)]
    times = [hours(draw(st.integers(-2, 32))) if draw(st.integers(0, 15)) else None for _ in range(n)]
    frame = (
        pl.DataFrame(
            {
                "k": pl.Series(ks, dtype=key_dtype),
                "region": pl.Series(regions, dtype=pl.String),
                "ts": entity_times(times, mode),
            }
        )
        .with_row_index("row_id")
        .with_columns(pl.col("row_id").cast(pl.Int64))
    )
    if n and draw(st.booleans()):
        frame = pl.concat([frame, frame.head(draw(st.integers(1, n)))])  # exact duplicate rows
    return frame


@st.composite
def specs(draw: st.DrawFn, keys: tuple[str, ...], *, prefix: str = "") -> PointInTimeSpec:
    ttl = draw(st.none() | st.integers(0, 6).map(lambda h: timedelta(hours=h)))
    tie_breakers = draw(st.sampled_from([(), ("_tauro_seq",), ("created", "_tauro_seq")]))
    outputs = draw(st.sampled_from([None, (f"g__{prefix}value", f"g__{prefix}label")]))
    return PointInTimeSpec(
        entity_keys=keys,
        entity_time="ts",
        event_time="event_time",
        feature_columns=(f"{prefix}value", f"{prefix}label"),
        output_names=outputs,
        ttl=ttl,
        tie_breakers=tie_breakers,
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, PointInTimeSpec]:
    keys = draw(st.sampled_from([("k",), ("k", "region")]))
    return draw(entity_frames()), draw(feature_frames(keys)), draw(specs(keys))


def assert_matches(runner: PitRunner, got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Row for row, including count and order; Spark gets its dtypes mapped back first."""
    assert got.columns == expected.columns
    if runner.name == "spark":
        got = like(got, expected)
    assert_frame_equal(got, expected, check_exact=True)


def test_every_engine_matches_the_oracle(pit_runner: PitRunner) -> None:
    @settings(max_examples=pit_runner.max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=cases())
    def check(case: tuple[pl.DataFrame, pl.DataFrame, PointInTimeSpec]) -> None:
        entity, features, spec = case
        expected = oracle_point_in_time(entity, features, spec)
        assert expected.height == entity.height
        assert_matches(pit_runner, pit_runner.join(entity, features, spec), expected)

    check()


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_the_in_memory_path_for_small_inputs_matches_the_oracle(engine: PitEngine) -> None:
    # feature_rows (known from table metadata) at most IN_MEMORY_ROWS: one read, every pass in memory
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=cases())
    def check(case: tuple[pl.DataFrame, pl.DataFrame, PointInTimeSpec]) -> None:
        entity, features, spec = case
        expected = oracle_point_in_time(entity, features, spec)
        got = point_in_time_join(
            entity.lazy(), features.lazy(), spec, engine=engine, feature_rows=features.height
        ).collect()
        assert_frame_equal(got, expected, check_exact=True)

    check()


# Tie-breaker kinds with their extremes (a dtype's minimum is also the NumPy match's floor).
TIE_VALUES: dict[str, tuple[pl.DataType, st.SearchStrategy[Any]]] = {
    "bool": (pl.Boolean(), st.booleans()),
    "int8": (pl.Int8(), st.sampled_from([-128, -1, 0, 127])),
    "uint64": (pl.UInt64(), st.sampled_from([0, 1, 2**63 - 1])),
    "uint64_top": (pl.UInt64(), st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1])),
    "date": (pl.Date(), st.sampled_from([date(1969, 12, 31), date(2025, 1, 1)])),
    "ns": (pl.Datetime("ns"), st.sampled_from([datetime(1960, 1, 1), hours(0).replace(tzinfo=None)])),
}


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
@pytest.mark.parametrize("in_memory", [False, True])
def test_tie_breakers_of_every_kind_match_the_oracle(engine: PitEngine, in_memory: bool) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        dtype, values = TIE_VALUES[data.draw(st.sampled_from(sorted(TIE_VALUES)))]
        n = data.draw(st.integers(0, 16))
        features = pl.DataFrame(
            {
                "k": pl.Series([data.draw(st.integers(0, 2)) for _ in range(n)], dtype=pl.Int64),
                "event_time": pl.Series(
                    [hours(data.draw(st.integers(0, 3))) for _ in range(n)], dtype=pl.Datetime("us", "UTC")
                ),
                "tb": pl.Series([data.draw(st.none() | values) for _ in range(n)], dtype=dtype),
                "_tauro_seq": pl.Series(
                    [data.draw(st.none() | st.integers(0, 1)) for _ in range(n)], dtype=pl.Int64
                ),
                "v": pl.Series([float(i) for i in range(n)], dtype=pl.Float64),
            }
        )
        m = data.draw(st.integers(1, 8))
        entity = pl.DataFrame(
            {
                "k": pl.Series([data.draw(st.none() | st.integers(0, 3)) for _ in range(m)], dtype=pl.Int64),
                "ts": pl.Series(
                    [hours(data.draw(st.integers(-1, 4))) for _ in range(m)], dtype=pl.Datetime("us", "UTC")
                ),
            }
        )
        tie_breakers = data.draw(st.sampled_from([("tb",), ("tb", "_tauro_seq")]))
        spec = _spec(ttl=data.draw(st.none() | st.just(timedelta(hours=1))), tie_breakers=tie_breakers)
        rows = features.height if in_memory else None
        got = point_in_time_join(
            entity.lazy(), features.lazy(), spec, engine=engine, feature_rows=rows
        ).collect()
        assert_frame_equal(got, oracle_point_in_time(entity, features, spec), check_exact=True)

    check()


def test_the_in_memory_path_reads_the_feature_frame_once() -> None:
    entity, features = _frames(
        [{"k": 1, "event_time": hours(1), "created": None, "_tauro_seq": 1, "v": 1.0}],
        [{"k": 1, "ts": hours(2)}, {"k": 2, "ts": hours(2)}],
    )
    reads = []

    def counted() -> pl.DataFrame:
        reads.append(1)
        return features

    source = pl.defer(counted, schema=features.schema)
    spec = _spec(tie_breakers=("created", "_tauro_seq"))
    small = point_in_time_join(entity.lazy(), source, spec, feature_rows=1).collect()
    assert (len(reads), small["v"].to_list()) == (1, [1.0, None])
    reads.clear()
    big = point_in_time_join(entity.lazy(), source, spec, feature_rows=IN_MEMORY_ROWS + 1).collect()
    assert len(reads) >= 2 and big.equals(small)  # above the threshold: narrow match, then fetch


def test_groups_joined_in_sequence_match_the_oracle(pit_runner: PitRunner) -> None:
    @settings(
        max_examples=max(pit_runner.max_examples // 3, 4),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        entity = data.draw(entity_frames())
        keys_a = data.draw(st.sampled_from([("k",), ("k", "region")]))
        features_a, spec_a = (
            data.draw(feature_frames(keys_a, prefix="a_")),
            data.draw(specs(keys_a, prefix="a_")),
        )
        features_b, spec_b = (
            data.draw(feature_frames(("region",), prefix="b_")),
            data.draw(specs(("region",), prefix="b_")),
        )
        expected = oracle_point_in_time(oracle_point_in_time(entity, features_a, spec_a), features_b, spec_b)
        first = pit_runner.join(entity, features_a, spec_a)
        if pit_runner.name == "spark":
            first = like(first, oracle_point_in_time(entity, features_a, spec_a))
        assert_matches(pit_runner, pit_runner.join(first, features_b, spec_b), expected)

    check()


# Keys and instants far apart: the Polars engine packs (key, event time) into one Int64 when
# both ranges fit together and falls back to the as-of join when they do not.
WIDE_KEYS = (-(2**63), -(2**40), -1, 0, 1, 7, 2**31 - 1, 2**40, 2**63 - 1)
WIDE_TIMES = (
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    BASE,
    BASE + timedelta(microseconds=1),
    BASE + timedelta(days=7),
    datetime(2200, 1, 1, tzinfo=UTC),
)


@st.composite
def wide_cases(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, PointInTimeSpec]:
    """Integer keys over a narrow, a 32-bit or the whole Int64 range; times from 1900 to 2200."""
    keys = draw(st.sampled_from([WIDE_KEYS[3:6], WIDE_KEYS[2:7], WIDE_KEYS]))
    key_dtype = draw(
        st.sampled_from([pl.Int64, pl.Int32] if max(keys) < 2**31 and min(keys) >= -(2**31) else [pl.Int64])
    )
    times = draw(st.sampled_from([WIDE_TIMES[3:6], WIDE_TIMES]))
    n = draw(st.integers(0, 20))
    features = pl.DataFrame(
        {
            "k": pl.Series([draw(st.sampled_from(keys)) for _ in range(n)], dtype=key_dtype),
            "event_time": pl.Series(
                [draw(st.sampled_from(times)) for _ in range(n)], dtype=pl.Datetime("us", "UTC")
            ),
            "_tauro_seq": pl.Series([draw(st.none() | st.integers(0, 2)) for _ in range(n)], dtype=pl.Int64),
            "v": pl.Series([float(i) for i in range(n)], dtype=pl.Float64),
        }
    )
    m = draw(st.integers(1, 10))
    entity = pl.DataFrame(
        {
            "k": pl.Series([draw(st.sampled_from(WIDE_KEYS)) for _ in range(m)], dtype=pl.Int64),
            "ts": pl.Series(
                [draw(st.sampled_from(WIDE_TIMES)) for _ in range(m)], dtype=pl.Datetime("us", "UTC")
            ),
        }
    )
    ttl = draw(st.none() | st.sampled_from([timedelta(0), timedelta(days=7), timedelta(days=365 * 100)]))
    return (
        entity,
        features,
        PointInTimeSpec(("k",), "ts", "event_time", ("v",), ttl=ttl, tie_breakers=("_tauro_seq",)),
    )


def test_wide_key_and_time_ranges_match_the_oracle(pit_runner: PitRunner) -> None:
    @settings(max_examples=pit_runner.max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=wide_cases())
    def check(case: tuple[pl.DataFrame, pl.DataFrame, PointInTimeSpec]) -> None:
        entity, features, spec = case
        assert_matches(
            pit_runner, pit_runner.join(entity, features, spec), oracle_point_in_time(entity, features, spec)
        )

    check()


def _frames(
    feature_rows: list[dict[str, Any]], entity_rows: list[dict[str, Any]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    features = pl.DataFrame(
        feature_rows,
        schema={
            "k": pl.Int64,
            "event_time": pl.Datetime("us", "UTC"),
            "created": pl.Datetime("us", "UTC"),
            "_tauro_seq": pl.Int64,
            "v": pl.Float64,
        },
        orient="row",
    )
    entity = pl.DataFrame(entity_rows, schema={"k": pl.Int64, "ts": pl.Datetime("us", "UTC")}, orient="row")
    return entity, features


def _spec(**kwargs: Any) -> PointInTimeSpec:
    return PointInTimeSpec(("k",), "ts", "event_time", ("v",), **kwargs)


def test_ties_go_to_the_greatest_created_time_then_write_sequence(pit_runner: PitRunner) -> None:
    t = hours(5)
    entity, features = _frames(
        [
            {"k": 1, "event_time": t, "created": hours(1), "_tauro_seq": 9, "v": 1.0},
            {"k": 1, "event_time": t, "created": hours(2), "_tauro_seq": 1, "v": 2.0},
            {"k": 1, "event_time": t, "created": hours(2), "_tauro_seq": 2, "v": 3.0},
            {"k": 1, "event_time": t, "created": None, "_tauro_seq": 7, "v": 4.0},
            {"k": 2, "event_time": t, "created": None, "_tauro_seq": None, "v": 5.0},
            {"k": 2, "event_time": t, "created": None, "_tauro_seq": 0, "v": 6.0},
        ],
        [{"k": 1, "ts": t}, {"k": 2, "ts": t}],
    )
    got = pit_runner.join(entity, features, _spec(tie_breakers=("created", "_tauro_seq")))
    assert got["v"].to_list() == [3.0, 6.0]


def test_a_rare_tie_among_many_rows_goes_to_the_greatest_created_time(pit_runner: PitRunner) -> None:
    # One tie among 40 rows: the engines read the tie-breakers of just those rows.
    rows = [
        {"k": i % 4, "event_time": hours(i), "created": hours(i), "_tauro_seq": i, "v": float(i)}
        for i in range(40)
    ]
    rows.append({"k": 1, "event_time": hours(21), "created": hours(22), "_tauro_seq": 0, "v": -1.0})
    entity, features = _frames(rows, [{"k": k, "ts": hours(t)} for k in range(4) for t in (21, 22, 39)])
    spec = _spec(tie_breakers=("created", "_tauro_seq"), ttl=timedelta(hours=6))
    got = pit_runner.join(entity, features, spec)
    assert_matches(pit_runner, got, oracle_point_in_time(entity, features, spec))
    assert got["v"].to_list()[3] == -1.0


def test_ttl_window_is_closed_at_both_ends(pit_runner: PitRunner) -> None:
    t, ttl, us = hours(10), timedelta(hours=3), timedelta(microseconds=1)
    cases = {  # feature event time -> expected value at entity time t
        t: 1.0,
        t + us: None,
        t - ttl: 3.0,
        t - ttl - us: None,
    }
    for k, (event, _) in enumerate(cases.items()):
        entity, features = _frames(
            [
                {
                    "k": k,
                    "event_time": event,
                    "created": None,
                    "_tauro_seq": 0,
                    "v": 1.0 if event == t else 3.0,
                }
            ],
            [{"k": k, "ts": t}],
        )
        got = pit_runner.join(entity, features, _spec(ttl=ttl))
        assert got["v"].to_list() == [cases[event]], event


def test_null_value_in_the_winning_row_stays_null(pit_runner: PitRunner) -> None:
    entity, features = _frames(
        [
            {"k": 1, "event_time": hours(1), "created": None, "_tauro_seq": 0, "v": 7.0},
            {"k": 1, "event_time": hours(2), "created": None, "_tauro_seq": 0, "v": None},
        ],
        [{"k": 1, "ts": hours(3)}, {"k": 1, "ts": hours(1)}],
    )
    assert pit_runner.join(entity, features, _spec())["v"].to_list() == [None, 7.0]


def test_int64_entity_key_outside_int32_range_matches_nothing(pit_runner: PitRunner) -> None:
    features = pl.DataFrame(
        {"k": pl.Series([0, 1], dtype=pl.Int32), "event_time": [hours(0), hours(0)], "v": [1.0, 2.0]},
        schema_overrides={"event_time": pl.Datetime("us", "UTC")},
    )
    entity = pl.DataFrame(
        {"k": [2**32, 1], "ts": [hours(1), hours(1)]}, schema_overrides={"ts": pl.Datetime("us", "UTC")}
    )
    got = pit_runner.join(entity, features, _spec())
    assert got["v"].to_list() == [None, 2.0]
    assert got["k"].to_list() == [2**32, 1]


def test_date_entity_times_are_utc_midnight(pit_runner: PitRunner) -> None:
    features = pl.DataFrame(
        {
            "k": [1, 1],
            "event_time": [datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 2, 0, 0, 1, tzinfo=UTC)],
            "v": [1.0, 2.0],
        },
        schema_overrides={"event_time": pl.Datetime("us", "UTC")},
    )
    entity = pl.DataFrame({"k": [1], "ts": [date(2025, 1, 2)]})
    assert pit_runner.join(entity, features, _spec())["v"].to_list() == [1.0]


def test_spark_takes_naive_times_as_utc_whatever_the_session_zone(spark: Any) -> None:
    from tauro_workbench.engines.pit_spark import point_in_time_join_spark

    features = pl.DataFrame(
        {"k": [1, 1], "event_time": [hours(5), hours(6)], "v": [1.0, 2.0]},
        schema_overrides={"event_time": pl.Datetime("us", "UTC")},
    )
    naive = [(1, hours(5).replace(tzinfo=None)), (1, hours(6).replace(tzinfo=None))]
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        entity_sdf = spark.createDataFrame(naive, schema="k long, ts timestamp_ntz")
        assert entity_sdf.schema["ts"].dataType.typeName() == "timestamp_ntz"
        out = point_in_time_join_spark(entity_sdf, spark.createDataFrame(features.to_arrow()), _spec())
        values = [row["v"] for row in out.collect()]
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    assert values == [1.0, 2.0]
