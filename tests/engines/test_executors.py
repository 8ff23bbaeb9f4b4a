"""Contract tests of the QueryExecutors (DuckDB and the real local Spark session) and sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import write_deltalake

from tauro_workbench.engines.base import QueryExecutor
from tauro_workbench.engines.duckdb import DuckDBQueryExecutor
from tauro_workbench.exceptions import DataSourceError, QueryTimeoutError, VirtualizationQueryError
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.sources import SourceRegistry

UTC = UTC
USERS = pl.DataFrame(
    {
        "user_id": [1, 2, 3],
        "name": ["a", "b", "'); DROP TABLE x; --"],
        "ts": [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)],
    }
)


@pytest.fixture(params=["duckdb", "spark"])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    USERS.write_parquet(tmp_path / "users.parquet")
    write_deltalake(
        str(tmp_path / "orders"), pl.DataFrame({"user_id": [1, 1, 2], "amount": [1.0, 2.0, 3.0]}).to_arrow()
    )
    write_deltalake(
        str(tmp_path / "orders"), pl.DataFrame({"user_id": [3], "amount": [4.0]}).to_arrow(), mode="overwrite"
    )
    sources = {"silver.users": str(tmp_path / "users.parquet"), "silver.orders": str(tmp_path / "orders")}
    if request.param == "duckdb":
        ex: Any = DuckDBQueryExecutor(
            {"sources": sources}, config={"virtualized": {"query_timeout_seconds": 60}}
        )
    else:
        from tauro_workbench.engines.spark import SparkQueryExecutor

        ex = SparkQueryExecutor(
            {"sources": sources, "spark": request.getfixturevalue("spark")},
            config={"virtualized": {"query_timeout_seconds": 60}},
        )
    yield ex
    ex.close()


def test_executes_over_sources_and_reads_delta_through_its_log(executor: QueryExecutor) -> None:
    assert isinstance(executor, QueryExecutor)
    users = executor.execute("SELECT * FROM silver.users ORDER BY user_id").collect()
    assert users["user_id"].to_list() == [1, 2, 3]
    # the overwritten Delta version's files are still in the folder; only the live one is read
    assert executor.execute("SELECT COUNT(*) AS n FROM silver.orders").collect()["n"].to_list() == [1]


def test_parameters_are_values_not_sql(executor: QueryExecutor) -> None:
    marker = "$name" if executor.dialect == "duckdb" else ":name"
    for hostile in ["1 OR 1=1", "'); DROP TABLE x; --"]:
        out = executor.execute(
            f"SELECT user_id FROM silver.users WHERE name = {marker}", {"name": hostile}
        ).collect()
        assert out["user_id"].to_list() == ([3] if hostile.startswith("'") else [])
    assert executor.execute("SELECT COUNT(*) AS n FROM silver.users").collect()["n"].to_list() == [3]


def test_other_dialect_is_transpiled(executor: QueryExecutor) -> None:
    other = "spark" if executor.dialect == "duckdb" else "duckdb"
    sql = "SELECT user_id, CAST(ts AS DATE) AS d FROM silver.users WHERE user_id = 2"
    out = executor.execute(sql, dialect=other).collect()
    assert out.rows() == [(2, datetime(2024, 1, 2).date())]
    assert "users" in executor.explain("SELECT * FROM silver.users").lower() or executor.explain(
        "SELECT 1 AS a"
    )


def test_schema_and_frames(executor: QueryExecutor) -> None:
    schema = executor.schema("SELECT user_id, ts FROM silver.users")
    assert schema["user_id"] == pl.Int64 and isinstance(schema["ts"], pl.Datetime)
    ids = pl.DataFrame({"user_id": [2, 3]})
    out = executor.execute(
        "SELECT u.user_id FROM silver.users u JOIN tmp_ids i ON u.user_id = i.user_id ORDER BY 1",
        frames={"tmp_ids": ids},
    ).collect()
    assert out["user_id"].to_list() == [2, 3]


@pytest.mark.parametrize(
    "sql", ["SELEC user_id FROM silver.users", "SELECT * FROM silver.nope", "SELECT nope FROM silver.users"]
)
def test_bad_sql_is_a_typed_error(executor: QueryExecutor, sql: str) -> None:
    with pytest.raises(VirtualizationQueryError) as info:
        executor.execute(sql).collect()
    assert sql in str(info.value)


def test_timeout_cancels_the_query(executor: QueryExecutor) -> None:
    executor.config = executor.config.with_options(virtualized={"query_timeout_seconds": 2})
    if executor.name == "spark":
        # range() is refused in SQL, and Spark cancels only operators that check for it (its
        # range does): the executor's own timeout machinery runs a range job built in Python
        spark: Any = executor.spark  # type: ignore[attr-defined]
        slow = spark.range(100_000_000_000).crossJoin(spark.range(10)).groupBy().count()
        with pytest.raises(QueryTimeoutError):
            executor._collect(lambda: slow, "range(1e11) x range(10)")  # type: ignore[attr-defined]
    else:
        # table functions such as range() are refused: a cross join of a source is the slow query
        executor.register_frame("silver.big", pl.DataFrame({"x": list(range(20_000))}))
        with pytest.raises(QueryTimeoutError):
            executor.execute(
                "SELECT SUM(a.x * b.x + c.x) AS n FROM silver.big a CROSS JOIN silver.big b CROSS JOIN silver.big c"
            )
    assert executor.execute("SELECT 1 AS a").collect()["a"].to_list() == [1]


def test_source_registry_persists_and_describes(tmp_path: Path) -> None:
    USERS.write_parquet(tmp_path / "users.parquet")
    meta = FeatureStoreMetadata(storage_path=tmp_path)
    reg = SourceRegistry(meta)
    reg.add("silver.users", tmp_path / "users.parquet")
    reg.add_frame("mem.frame", USERS)
    info = {i.name: i for i in reg.list()}
    assert info["silver.users"].row_estimate == 3 and info["silver.users"].freshness is not None
    assert "user_id" in info["mem.frame"].schema
    assert SourceRegistry(meta).names() == ["silver.users"]  # frames are not persisted
    for bad in ["a.b.c", "silver.1x", "silver.users; DROP"]:
        with pytest.raises(DataSourceError):
            reg.add_frame(bad, USERS)
    with pytest.raises(DataSourceError):
        reg.add("silver.none", tmp_path / "missing.parquet")
