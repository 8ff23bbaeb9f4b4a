"""Point-in-time engines behind one calling convention, for the contract suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest

from tauro_workbench.engines.pit import PointInTimeSpec, point_in_time_join
from tauro_workbench.engines.pit_spark import point_in_time_join_spark

JoinFn = Callable[[pl.DataFrame, pl.DataFrame, PointInTimeSpec], pl.DataFrame]


@dataclass(frozen=True)
class PitRunner:
    """One engine: ``join(entity, features, spec)`` on eager Polars frames, eager result."""

    name: str
    join: JoinFn
    max_examples: int


def like(got: pl.DataFrame, expected: pl.DataFrame) -> pl.DataFrame:
    """Return ``got`` with ``expected``'s dtypes (Spark round trips change units and zones)."""
    exprs = []
    for name, dtype in expected.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime) and isinstance(got.schema[name], pl.Datetime):
            source = got.schema[name]
            assert isinstance(source, pl.Datetime)
            if dtype.time_zone is not None:
                col = (col if source.time_zone else col.dt.replace_time_zone("UTC")).dt.convert_time_zone(
                    dtype.time_zone
                )
            elif source.time_zone is not None:
                col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            col = col.dt.cast_time_unit(dtype.time_unit)
        exprs.append(col.cast(dtype).alias(name))
    return got.select(exprs)


def _spark_join(spark: Any) -> JoinFn:
    def join(entity: pl.DataFrame, features: pl.DataFrame, spec: PointInTimeSpec) -> pl.DataFrame:
        # Spark has no nanosecond timestamps: hand it microseconds (the instants are unchanged).
        entity = entity.with_columns(pl.col(pl.Datetime("ns")).dt.cast_time_unit("us"))
        out = point_in_time_join_spark(
            spark.createDataFrame(entity.to_arrow()), spark.createDataFrame(features.to_arrow()), spec
        )
        got = pl.from_arrow(out.toArrow())
        assert isinstance(got, pl.DataFrame)
        return got

    return join


def _local_join(engine: str, *, in_memory: bool = False) -> JoinFn:
    def join(entity: pl.DataFrame, features: pl.DataFrame, spec: PointInTimeSpec) -> pl.DataFrame:
        # in_memory: the row count is known and small, as from table metadata (one read, NumPy match)
        rows = features.height if in_memory else None
        lazy = point_in_time_join(entity.lazy(), features.lazy(), spec, engine=engine, feature_rows=rows)  # type: ignore[arg-type]
        return lazy.collect()

    return join


@pytest.fixture(scope="module", params=["polars", "polars_in_memory", "duckdb", "spark"])
def pit_runner(request: pytest.FixtureRequest) -> PitRunner:
    """Each point-in-time engine in turn, and Polars' in-memory path (Spark uses the session's local Spark)."""
    if request.param == "spark":
        join = _spark_join(request.getfixturevalue("spark"))
        # The first Arrow exchange raises the recursion limit inside pyspark; doing it here,
        # outside any hypothesis run, keeps hypothesis from warning about it.
        probe = pl.DataFrame({"k": [1], "t": [0]}, schema={"k": pl.Int64, "t": pl.Datetime("us", "UTC")})
        join(
            probe,
            probe.rename({"t": "e"}).with_columns(v=pl.lit(1.0)),
            PointInTimeSpec(("k",), "t", "e", ("v",)),
        )
        return PitRunner("spark", join, max_examples=10)
    if request.param == "polars_in_memory":
        return PitRunner(request.param, _local_join("polars", in_memory=True), max_examples=80)
    return PitRunner(request.param, _local_join(request.param), max_examples=80)
