"""User SQL reads only registered sources: refused when defined, sealed off when run.

An attacker's view: every way DuckDB or Spark SQL can reach a file, a setting or the machine
(table functions, replacement scans of string literals, scalar subqueries, CTEs that shadow
a source, ``COPY``/``ATTACH``/``INSTALL``/``SET``, several statements) is refused by the check
before it runs, with the registered sources listed; and the DuckDB database itself cannot
open any file but the registered Parquet sources' even when that check is bypassed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from deltalake import write_deltalake

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tauro_workbench.engines import duckdb as duckdb_engine
from tauro_workbench.engines.duckdb import DuckDBQueryExecutor
from tauro_workbench.engines.sql_dialect import prepare_query
from tauro_workbench.exceptions import VirtualizationQueryError
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

USERS = pl.DataFrame({"user_id": [1, 2], "age": [30, 40]})
SECRET = "tauro-secret-4f1c"

# {secret} is a file outside every source holding SECRET
DUCKDB_ATTACKS = [
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM '{secret}'",
    'SELECT * FROM "{secret}"',
    "SELECT * FROM read_csv_auto('{secret}')",
    "SELECT * FROM read_csv('{secret}', header = false)",
    "SELECT * FROM read_parquet('{secret}')",
    "SELECT * FROM read_blob('{secret}')",
    "SELECT * FROM glob('{secret}')",
    "SELECT user_id, (SELECT content FROM read_text('{secret}')) AS age FROM silver.users",
    "SELECT user_id, age FROM silver.users WHERE age > (SELECT COUNT(*) FROM glob('/etc/*'))",
    # a CTE cannot hide the relation its own body reads
    'WITH "{secret}" AS (SELECT * FROM "{secret}") SELECT * FROM "{secret}"',
    "WITH users AS (SELECT * FROM read_text('{secret}')) SELECT * FROM users",
    "SELECT * FROM (WITH x AS (SELECT 1 AS a) SELECT * FROM x) AS t, x",
    "SELECT * FROM query_table('silver.users')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT getenv('HOME') AS age",
    "SELECT current_setting('home_directory') AS age",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM range(10)",
    "SELECT * FROM silver.users, unnest([1, 2]) AS t(x)",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM memory.silver.users",
    "SELECT * FROM _tauro_src__silver__users",
    "SELECT * INTO stolen FROM silver.users",
    "COPY (SELECT * FROM silver.users) TO '{secret}.out'",
    "ATTACH '{secret}.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA threads=1",
    "SET enable_external_access = true",
    "CREATE TABLE t AS SELECT 1",
    "DROP VIEW silver.users",
    "SELECT 1 AS a; SELECT * FROM read_text('{secret}')",
]


def _refusal(message: str) -> bool:
    """A read outside the sources lists them; other statements are refused as not one SELECT."""
    return (
        ("may read only registered sources" in message and "Registered sources: ['silver.users']" in message)
        or "is not a SELECT query" in message
        or "Expected one statement" in message
    )


@pytest.fixture
def secret(tmp_path: Path) -> str:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return str(path)


@pytest.fixture
def executor(tmp_path: Path) -> Any:
    USERS.write_parquet(tmp_path / "users.parquet")
    ex = DuckDBQueryExecutor(sources={"silver.users": str(tmp_path / "users.parquet")})
    yield ex
    ex.close()


@pytest.mark.parametrize("attack", DUCKDB_ATTACKS)
def test_duckdb_attacks_are_refused_before_they_run(
    executor: DuckDBQueryExecutor, secret: str, attack: str
) -> None:
    sql = attack.format(secret=secret)
    with pytest.raises(VirtualizationQueryError) as info:
        executor.execute(sql).collect()
    message = str(info.value)
    assert SECRET not in message and sql in message
    assert _refusal(message)


@pytest.mark.parametrize("attack", DUCKDB_ATTACKS[:14])
def test_virtual_definitions_are_refused_listing_the_sources(
    tmp_path: Path, secret: str, attack: str
) -> None:
    USERS.write_parquet(tmp_path / "users.parquet")
    store = VirtualizedFeatureStore(
        {"sources": {"silver.users": str(tmp_path / "users.parquet")}},
        config={"storage_path": str(tmp_path / "repo")},
    )
    store.register_features(
        FeatureGroupSchema("people", entity_keys=["user_id"], features=[FeatureSchema("age", "BIGINT")])
    )
    with pytest.raises(VirtualizationQueryError, match=r"Registered sources: \['silver.users'\]"):
        store.define_virtual_features("people", attack.format(secret=secret))
    assert store.list_virtual_groups() == []
    store.executor.close()


@pytest.mark.parametrize(
    "attack",
    [
        "SELECT * FROM read_text('{secret}')",
        "SELECT * FROM '{secret}'",
        "SELECT * FROM read_csv_auto('{secret}')",
        "SELECT * FROM glob('{secret}')",
        "SELECT (SELECT content FROM read_text('{secret}')) AS c",
        "COPY (SELECT 1 AS a) TO '{secret}.out'",
        "ATTACH '{secret}.db' AS other",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SET allowed_paths = ['{secret}']",
        "SET python_enable_replacements = true",
        "SELECT * FROM frame_in_scope",
    ],
)
def test_the_database_is_sealed_even_when_the_check_is_bypassed(
    executor: DuckDBQueryExecutor, secret: str, attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # injecting the one failure that cannot happen for real: the SQL check letting text through
    monkeypatch.setattr(duckdb_engine, "prepare_query", lambda sql, **_: sql)
    frame_in_scope = pl.DataFrame({"leak": [SECRET]})  # a Python replacement scan would find this
    assert frame_in_scope.height == 1
    executor.execute("SELECT * FROM silver.users").collect()  # the database exists
    with pytest.raises(VirtualizationQueryError) as info:
        executor.execute(attack.format(secret=secret)).collect()
    assert SECRET not in str(info.value)
    assert not Path(secret + ".out").exists() and not Path(secret + ".db").exists()
    assert isinstance(info.value.__cause__, duckdb.Error)
    # the sources still read after the attempt
    assert executor.execute("SELECT COUNT(*) AS n FROM silver.users").collect()["n"].to_list() == [2]


def test_registered_sources_of_every_format_still_read(tmp_path: Path) -> None:
    USERS.write_parquet(tmp_path / "users.parquet")
    write_deltalake(str(tmp_path / "orders"), pl.DataFrame({"user_id": [1, 2], "n": [5, 6]}).to_arrow())
    (tmp_path / "cities.csv").write_text("user_id,city\n1,Oslo\n2,Lima\n")
    ex = DuckDBQueryExecutor(
        sources={
            "silver.users": str(tmp_path / "users.parquet"),
            "silver.orders": str(tmp_path / "orders"),
            "silver.cities": str(tmp_path / "cities.csv"),
        }
    )
    ex.register_frame("mem.scores", pl.DataFrame({"user_id": [1, 2], "score": [0.5, 0.7]}))
    sql = (
        "WITH u AS (SELECT * FROM silver.users) SELECT u.user_id, u.age, o.n, c.city, s.score FROM u "
        "JOIN silver.orders o USING (user_id) JOIN silver.cities c USING (user_id) "
        "JOIN mem.scores s USING (user_id) WHERE u.user_id IN (SELECT user_id FROM tmp_ids) ORDER BY 1"
    )
    out = ex.execute(sql, frames={"tmp_ids": pl.DataFrame({"user_id": [2]})}).collect()
    assert out.rows() == [(2, 40, 6, "Lima", 0.7)]
    # a Parquet source added later: the executor opens a new sealed database that may read it
    pl.DataFrame({"user_id": [3], "age": [50]}).write_parquet(tmp_path / "more.parquet")
    ex.sources.add("silver.more", str(tmp_path / "more.parquet"))
    assert ex.execute("SELECT age FROM silver.more").collect()["age"].to_list() == [50]
    # and a file added to a folder source is read too
    folder = tmp_path / "events"
    folder.mkdir()
    pl.DataFrame({"user_id": [1]}).write_parquet(folder / "a.parquet")
    ex.sources.add("silver.events", str(folder))
    assert ex.execute("SELECT COUNT(*) AS n FROM silver.events").collect()["n"].to_list() == [1]
    pl.DataFrame({"user_id": [2]}).write_parquet(folder / "b.parquet")
    assert ex.execute("SELECT COUNT(*) AS n FROM silver.events").collect()["n"].to_list() == [2]
    with pytest.raises(VirtualizationQueryError):  # still sealed after the new databases
        ex.execute(f"SELECT * FROM read_text('{tmp_path / 'cities.csv'}')").collect()
    ex.close()


def test_frame_names_must_be_identifiers_and_cannot_smuggle_sql() -> None:
    with pytest.raises(VirtualizationQueryError, match="not identifiers"):
        prepare_query(
            "SELECT * FROM read_text('/etc/passwd')",
            read="duckdb",
            write="duckdb",
            known=[],
            frames=["read_text('/etc/passwd')"],
        )
    # a frame named like a table function does not make the function a relation
    with pytest.raises(VirtualizationQueryError, match="table function"):
        prepare_query(
            "SELECT * FROM read_text('/x')", read="duckdb", write="duckdb", known=[], frames=["read_text"]
        )
    ok = "SELECT * FROM silver.users WHERE user_id IN (SELECT user_id FROM tauro_ids_ab12)"
    assert (
        prepare_query(ok, read="duckdb", write="duckdb", known=["silver.users"], frames=["tauro_ids_ab12"])
        == ok
    )


@pytest.mark.parametrize(
    "attack",
    [
        "SELECT * FROM parquet.`{secret}`",
        "SELECT * FROM text.`{secret}`",
        "SELECT * FROM read_files('{secret}')",
        "SELECT * FROM range(10)",
        "SELECT reflect('java.lang.System', 'getenv', 'HOME') AS age",
        "SELECT TRANSFORM(user_id) USING 'cat {secret}' AS (age) FROM silver.users",
        "SELECT * FROM silver.users LATERAL VIEW explode(array(1)) t AS x",
        "SELECT * FROM global_temp.anything",
        "INSERT OVERWRITE DIRECTORY '{secret}.out' SELECT 1",
    ],
)
def test_spark_attacks_are_refused(spark: Any, tmp_path: Path, secret: str, attack: str) -> None:
    from tauro_workbench.engines.spark import SparkQueryExecutor

    ex = SparkQueryExecutor(spark=spark, sources={"silver.users": USERS})
    try:
        with pytest.raises(VirtualizationQueryError) as info:
            ex.execute(attack.format(secret=secret)).collect()
        assert SECRET not in str(info.value) and _refusal(str(info.value))
        assert ex.execute("SELECT COUNT(*) AS n FROM silver.users").collect()["n"].to_list() == [2]
    finally:
        ex.close()
