"""The point-in-time join's API: laziness, scans, and the errors for malformed requests."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tauro_workbench.engines.pit import PitEngine, PointInTimeSpec, point_in_time_join
from tauro_workbench.exceptions import PointInTimeError
from tests.engines.test_point_in_time import hours
from tests.pit_oracle import oracle_point_in_time

SPEC = PointInTimeSpec(
    ("k",), "ts", "event_time", ("v",), ttl=timedelta(hours=2), tie_breakers=("_tauro_seq",)
)


def _features(n: int = 6) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "k": [i % 3 for i in range(n)],
            "event_time": [hours(i) for i in range(n)],
            "_tauro_seq": list(range(n)),
            "v": [float(i) for i in range(n)],
        },
        schema_overrides={"event_time": pl.Datetime("us", "UTC")},
    )


def _entity() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "k": [0, 1, 2, 0],
            "ts": [hours(4), hours(4), hours(9), hours(0)],
            "label": [True, False, True, True],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_join_over_parquet_scans_matches_the_oracle(tmp_path: Path, engine: PitEngine) -> None:
    _features(200).write_parquet(tmp_path / "f.parquet", row_group_size=16)
    _entity().write_parquet(tmp_path / "e.parquet")
    got = point_in_time_join(
        pl.scan_parquet(tmp_path / "e.parquet"), pl.scan_parquet(tmp_path / "f.parquet"), SPEC, engine=engine
    )
    assert_frame_equal(got.collect(), oracle_point_in_time(_entity(), _features(200), SPEC))


def test_result_schema_is_known_without_running_the_join() -> None:
    calls = []

    def entity_source() -> pl.DataFrame:
        calls.append(1)
        return _entity()

    entity = pl.defer(entity_source, schema=_entity().schema)
    joined = point_in_time_join(entity, _features().lazy(), SPEC)
    assert joined.collect_schema() == pl.Schema([*_entity().schema.items(), ("v", pl.Float64())])
    assert calls == []
    assert joined.collect().height == 4


@pytest.mark.parametrize(
    ("entity", "features", "spec", "message"),
    [
        (_entity().rename({"label": "v"}), _features(), SPEC, "already exist in the entity frame"),
        (_entity().drop("ts"), _features(), SPEC, "entity frame lacks columns ['ts']"),
        (_entity(), _features().drop("_tauro_seq"), SPEC, "feature frame lacks columns ['_tauro_seq']"),
        (_entity().with_columns(pl.col("k").cast(pl.String)), _features(), SPEC, "entity key 'k' is String"),
        (_entity().with_columns(pl.col("ts").cast(pl.Int64)), _features(), SPEC, "time column 'ts' is Int64"),
        (
            _entity(),
            _features().with_columns(pl.col("_tauro_seq").cast(pl.String)),
            SPEC,
            "tie-breaker '_tauro_seq' is String",
        ),
    ],
)
def test_malformed_requests_raise_point_in_time_error(
    entity: pl.DataFrame, features: pl.DataFrame, spec: PointInTimeSpec, message: str
) -> None:
    with pytest.raises(PointInTimeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        point_in_time_join(entity.lazy(), features.lazy(), spec)


def test_malformed_specs_raise_point_in_time_error() -> None:
    with pytest.raises(PointInTimeError, match="at least one entity key"):
        PointInTimeSpec((), "ts", "event_time", ("v",))
    with pytest.raises(PointInTimeError, match="duplicates"):
        PointInTimeSpec(("k",), "ts", "event_time", ("a", "b"), output_names=("x", "x"))
    with pytest.raises(PointInTimeError, match="reserved prefix"):
        PointInTimeSpec(("__tauro_row",), "ts", "event_time", ("v",))
    with pytest.raises(PointInTimeError, match="negative"):
        PointInTimeSpec(("k",), "ts", "event_time", ("v",), ttl=timedelta(hours=-1))
    with pytest.raises(PointInTimeError, match="unknown point-in-time engine 'pandas'"):
        point_in_time_join(_entity().lazy(), _features().lazy(), SPEC, engine="pandas")  # type: ignore[arg-type]


def test_spark_join_rejects_malformed_requests(spark: Any) -> None:
    from tauro_workbench.engines.pit_spark import point_in_time_join_spark

    entity = spark.createDataFrame(_entity().to_arrow())
    features = spark.createDataFrame(_features().to_arrow())
    with pytest.raises(PointInTimeError, match="already exist in the entity frame"):
        point_in_time_join_spark(entity.withColumnRenamed("label", "v"), features, SPEC)
    with pytest.raises(PointInTimeError, match=r"feature frame lacks columns \['_tauro_seq'\]"):
        point_in_time_join_spark(entity, features.drop("_tauro_seq"), SPEC)
    with pytest.raises(PointInTimeError, match="entity key 'k' is string"):
        point_in_time_join_spark(entity.withColumn("k", entity["k"].cast("string")), features, SPEC)


def _changing_source(second_read: Any) -> pl.LazyFrame:
    """A feature frame whose reads after the first return ``second_read(rows)``."""
    reads = []

    def source() -> pl.DataFrame:
        reads.append(1)
        frame = _features(60)
        return frame if len(reads) == 1 else second_read(frame)

    return pl.defer(source, schema=_features().schema)


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_feature_frame_that_reorders_between_reads_is_detected_or_harmless(engine: PitEngine) -> None:
    # Like an unordered parallel query: each read may return the rows in another order.
    features = _changing_source(lambda frame: frame.reverse())
    if engine == "polars":  # one integer key: the reads are matched by value, so order is irrelevant
        got = point_in_time_join(_entity().lazy(), features, SPEC, engine=engine).collect()
        assert_frame_equal(got, oracle_point_in_time(_entity(), _features(60), SPEC))
        return
    with pytest.raises(PointInTimeError, match="different order when read again"):
        point_in_time_join(_entity().lazy(), features, SPEC, engine=engine).collect()


def test_feature_frame_that_changes_between_reads_is_detected() -> None:
    features = _changing_source(lambda frame: frame.filter(pl.col("k") != 0))
    with pytest.raises(PointInTimeError, match="other rows when read again"):
        point_in_time_join(_entity().lazy(), features, SPEC).collect()
