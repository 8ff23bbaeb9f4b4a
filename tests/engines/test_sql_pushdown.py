"""Filter pushdown (sqlglot) against a brute-force oracle: the query unfiltered, filtered in Polars.

For every query shape of the corpus, the rewritten query (plus the outer filter when the rewrite
reports itself incomplete) must return exactly the rows of the original query whose entity keys
are requested and whose event time is in bounds — on DuckDB with hypothesis-generated data,
and on a few shapes on the real local Spark session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from tauro_workbench.engines.duckdb import DuckDBQueryExecutor
from tauro_workbench.engines.sql_dialect import parse_query
from tauro_workbench.engines.sql_pushdown import (
    RowFilter,
    entity_filter,
    output_condition,
    push_filter,
    push_filters,
    time_filter,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
IDS = "tauro_ids_test"
TX_SCHEMA = pl.Schema(
    {"user_id": pl.Int64(), "shop": pl.Int64(), "ts": pl.Datetime("us", "UTC"), "amount": pl.Int64()}
)
USERS_SCHEMA = pl.Schema({"user_id": pl.Int64, "tier": pl.Int64})

# (sql, entity keys, event-time column or None, pushed completely?)
CORPUS: list[tuple[str, tuple[str, ...], str | None, bool]] = [
    ("SELECT user_id, ts, amount FROM silver.tx", ("user_id",), "ts", True),
    ("SELECT * FROM silver.tx", ("user_id",), "ts", True),
    (
        "SELECT user_id, SUM(amount) AS total, COUNT(*) AS n FROM silver.tx GROUP BY user_id",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT user_id, shop, SUM(amount) AS total FROM silver.tx GROUP BY user_id, shop",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT t.user_id AS user_id, MAX(t.amount) AS top FROM silver.tx AS t GROUP BY 1",
        ("user_id",),
        None,
        True,
    ),
    ("SELECT user_id, ts, SUM(amount) AS total FROM silver.tx GROUP BY ALL", ("user_id",), "ts", True),
    (
        "SELECT shop AS user_id, SUM(amount) AS total FROM silver.tx GROUP BY shop, user_id",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT user_id, shop, SUM(amount) AS total FROM silver.tx GROUP BY user_id, shop",
        ("user_id", "shop"),
        None,
        True,
    ),
    (
        "SELECT user_id, SUM(amount) AS total FROM silver.tx GROUP BY ROLLUP (user_id)",
        ("user_id",),
        None,
        False,
    ),
    (
        "SELECT user_id, COUNT(*) AS n FROM silver.tx GROUP BY user_id HAVING COUNT(*) > 1",
        ("user_id",),
        None,
        True,
    ),
    ("SELECT MIN(user_id) AS user_id, COUNT(*) AS n FROM silver.tx", ("user_id",), None, False),
    ("SELECT DISTINCT user_id, shop FROM silver.tx", ("user_id",), None, True),
    (
        "SELECT user_id, ts, SUM(amount) OVER (PARTITION BY user_id ORDER BY ts, amount ROWS UNBOUNDED PRECEDING) AS run "
        "FROM silver.tx",
        ("user_id",),
        "ts",
        True,  # the key pushes; the time bound must not (it would cut running sums)
    ),
    ("SELECT user_id, ts, RANK() OVER (ORDER BY amount) AS r FROM silver.tx", ("user_id",), "ts", False),
    ("SELECT user_id, ts, AVG(amount) OVER () AS everyone FROM silver.tx", ("user_id",), "ts", False),
    (
        "SELECT t.user_id, u.tier, SUM(t.amount) AS total FROM silver.tx AS t JOIN silver.users AS u "
        "ON t.user_id = u.user_id GROUP BY t.user_id, u.tier",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT u.user_id, COUNT(t.amount) AS n FROM silver.users AS u LEFT JOIN "
        "(SELECT user_id, amount FROM silver.tx) AS t ON u.user_id = t.user_id GROUP BY u.user_id",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT t.user_id, COUNT(*) AS n FROM silver.users AS u LEFT JOIN (SELECT user_id FROM silver.tx) AS t "
        "ON u.user_id = t.user_id GROUP BY t.user_id",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT u.user_id, t.amount FROM (SELECT user_id, amount FROM silver.tx) AS t RIGHT JOIN silver.users AS u "
        "ON t.user_id = u.user_id",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT t.user_id, u.tier FROM silver.tx AS t FULL OUTER JOIN (SELECT * FROM silver.users) AS u "
        "ON t.user_id = u.user_id",
        ("user_id",),
        None,
        True,
    ),
    (
        "WITH s AS (SELECT user_id, ts, amount FROM silver.tx WHERE amount > 0) "
        "SELECT user_id, ts, SUM(amount) AS total FROM s GROUP BY user_id, ts",
        ("user_id",),
        "ts",
        True,
    ),
    (
        "WITH s AS (SELECT user_id, amount FROM silver.tx) SELECT user_id, SUM(amount) AS total FROM s "
        "WHERE amount >= (SELECT AVG(amount) FROM s) GROUP BY user_id",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT user_id, ts, amount FROM silver.tx UNION ALL SELECT user_id, ts, -amount FROM silver.tx WHERE shop = 1",
        ("user_id",),
        "ts",
        True,
    ),
    (
        "SELECT user_id, amount FROM silver.tx UNION SELECT user_id, tier FROM silver.users",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT user_id, amount FROM silver.tx UNION ALL "
        "(SELECT user_id, amount FROM silver.tx ORDER BY amount, user_id NULLS FIRST LIMIT 3)",
        ("user_id",),
        None,
        False,
    ),
    (
        "SELECT user_id, total FROM (SELECT user_id, SUM(amount) AS total FROM silver.tx GROUP BY user_id) AS a "
        "WHERE total > 1",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT user_id, total FROM (SELECT user_id, SUM(amount) AS total FROM silver.tx GROUP BY user_id "
        "ORDER BY total DESC, user_id NULLS FIRST LIMIT 2) AS a",
        ("user_id",),
        None,
        True,  # the filter stays above the LIMIT, which is still complete
    ),
    (
        "SELECT u.user_id, (SELECT SUM(amount) FROM silver.tx) AS everything FROM silver.users AS u",
        ("user_id",),
        None,
        True,
    ),
    (
        "SELECT user_id, amount FROM silver.tx ORDER BY amount DESC, user_id NULLS FIRST, ts LIMIT 4",
        ("user_id",),
        None,
        False,
    ),
    (
        "SELECT user_id, ts, amount FROM silver.tx "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts DESC, amount DESC) = 1",
        ("user_id",),
        None,
        True,
    ),
]
SPARK_SHAPES = [0, 2, 12, 13, 15, 17, 20, 22, 24, 28]


def _sources(tx: pl.DataFrame, users: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {"silver.tx": tx, "silver.users": users}


def _sorted(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    # engines name the zone differently (Etc/UTC vs UTC): compare instants
    zoned = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
    frame = frame.with_columns([pl.col(c).dt.convert_time_zone("UTC") for c in zoned])
    return sorted(frame.rows(), key=repr)


def _oracle(
    result: pl.DataFrame,
    keys: tuple[str, ...],
    ids: pl.DataFrame,
    time_col: str | None,
    bounds: dict[str, datetime],
) -> pl.DataFrame:
    out = result.join(ids.unique(), on=list(keys), how="semi")
    if time_col is not None:
        out = out.with_columns(pl.col(time_col).dt.convert_time_zone("UTC"))
    if time_col is not None and "lo" in bounds:
        out = out.filter(pl.col(time_col) >= bounds["lo"])
    if time_col is not None and "hi" in bounds:
        out = out.filter(pl.col(time_col) <= bounds["hi"])
    return out


def _filters(keys: tuple[str, ...], time_col: str | None, bounds: dict[str, datetime]) -> list[RowFilter]:
    filters = [entity_filter(keys, IDS)]
    if time_col is not None and bounds:
        filters.append(
            time_filter(
                time_col, lower="lo" if "lo" in bounds else None, upper="hi" if "hi" in bounds else None
            )
        )
    return filters


def _rewrite(sql: str, filters: list[RowFilter], dialect: str) -> tuple[str, bool]:
    """Return the pushed query (wrapped in the outer filters it could not push) and whether all pushed."""
    text, outer = push_filters(sql, filters, read="duckdb", write=dialect)
    if not outer:
        return text, True
    return f"SELECT * FROM ({text}) AS _v WHERE {output_condition(outer, '_v', dialect)}", False


def _check_shape(
    executor: Any, index: int, ids: pl.DataFrame, bounds: dict[str, datetime], dialect: str
) -> None:
    sql, keys, time_col, _ = CORPUS[index]
    everything = executor.execute(sql, dialect="duckdb").collect()
    expected = _oracle(everything, keys, ids, time_col, bounds)
    text, _ = _rewrite(sql, _filters(keys, time_col, bounds), dialect)
    params = dict(bounds) if time_col is not None else {}
    got = executor.execute(text, params or None, dialect=dialect, frames={IDS: ids}).collect()
    assert got.columns == expected.columns, sql
    assert _sorted(got) == _sorted(expected), f"shape {index}: {sql}\nrewritten: {text}"


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_the_corpus_pushes_where_expected(index: int) -> None:
    sql, keys, _, complete = CORPUS[index]
    tree = parse_query(sql, "duckdb")
    before = tree.sql("duckdb")
    result = push_filter(tree, entity_filter(keys, IDS))
    assert result.complete is complete, (sql, result.reasons)
    assert tree.sql("duckdb") == before  # the input is never modified


def test_the_filter_lands_in_the_innermost_source_read() -> None:
    sql = (
        "WITH s AS (SELECT user_id, amount FROM silver.tx) "
        "SELECT user_id, SUM(amount) AS total FROM (SELECT * FROM s) AS x GROUP BY user_id"
    )
    pushed = push_filter(parse_query(sql, "duckdb"), entity_filter(["user_id"], IDS))
    assert pushed.complete
    cte = pushed.tree.find(exp.CTE)
    assert cte is not None and cte.this.args.get("where") is not None
    assert len(list(pushed.tree.find_all(exp.In))) == 1


def test_time_bounds_push_only_through_passthrough_columns() -> None:
    window = time_filter("ts", lower="lo", upper="hi")
    assert push_filter(parse_query(CORPUS[0][0], "duckdb"), window).complete
    assert not push_filter(parse_query(CORPUS[12][0], "duckdb"), window).complete
    derived = "SELECT user_id, DATE_TRUNC('day', ts) AS ts, SUM(amount) AS s FROM silver.tx GROUP BY 1, 2"
    assert not push_filter(parse_query(derived, "duckdb"), window).complete


tx_rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 5)), st.integers(0, 2), st.integers(0, 10), st.integers(-3, 5)
    ),
    max_size=25,
)
user_rows = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2)), max_size=8)
id_lists = st.lists(st.integers(0, 7), max_size=6)
hours = st.one_of(st.none(), st.integers(0, 10))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tx=tx_rows,
    users=user_rows,
    ids=id_lists,
    shops=st.lists(st.integers(0, 2), max_size=6),
    lo=hours,
    hi=hours,
)
def test_pushdown_matches_the_oracle_on_duckdb(
    tx: list[tuple[int | None, int, int, int]],
    users: list[tuple[int, int]],
    ids: list[int],
    shops: list[int],
    lo: int | None,
    hi: int | None,
) -> None:
    tx_frame = pl.DataFrame(
        [(u, s, T0 + timedelta(hours=h), a) for u, s, h, a in tx], schema=TX_SCHEMA, orient="row"
    )
    users_frame = pl.DataFrame(users, schema=USERS_SCHEMA, orient="row")
    bounds = {k: T0 + timedelta(hours=v) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
    with DuckDBQueryExecutor(sources=_sources(tx_frame, users_frame)) as executor:
        for index, (_, keys, _, _) in enumerate(CORPUS):
            if keys == ("user_id", "shop"):
                pairs = list(zip(ids, shops, strict=False))
                frame = pl.DataFrame(pairs, schema={"user_id": pl.Int64, "shop": pl.Int64}, orient="row")
            else:
                frame = pl.DataFrame({"user_id": ids}, schema={"user_id": pl.Int64})
            _check_shape(executor, index, frame, bounds, "duckdb")


def test_hostile_ids_are_plain_values() -> None:
    names = pl.DataFrame({"name": ["a", "'); DROP TABLE x; --", "1 OR 1=1x"], "n": [1, 2, 3]})
    sql = "SELECT name, SUM(n) AS n FROM silver.names GROUP BY name"
    ids = pl.DataFrame({"name": ["'); DROP TABLE x; --", "1 OR 1=1"]})
    with DuckDBQueryExecutor(sources={"silver.names": names}) as executor:
        text, complete = _rewrite(sql, [entity_filter(["name"], IDS)], "duckdb")
        assert complete and "DROP" not in text
        got = executor.execute(text, frames={IDS: ids}).collect()
        assert got.rows() == [("'); DROP TABLE x; --", 2)]
        assert executor.execute("SELECT COUNT(*) AS c FROM silver.names").collect()["c"].to_list() == [3]


def test_pushdown_matches_the_oracle_on_spark(spark: Any) -> None:
    from tauro_workbench.engines.spark import SparkQueryExecutor

    tx = pl.DataFrame(
        [
            (1, 0, T0, 2),
            (1, 1, T0 + timedelta(hours=3), 5),
            (2, 1, T0 + timedelta(hours=1), -1),
            (None, 0, T0 + timedelta(hours=2), 4),
            (3, 2, T0 + timedelta(hours=5), 1),
            (2, 1, T0 + timedelta(hours=1), -1),
        ],
        schema=TX_SCHEMA,
        orient="row",
    )
    users = pl.DataFrame([(1, 0), (2, 1), (4, 2), (4, 2)], schema=USERS_SCHEMA, orient="row")
    executor = SparkQueryExecutor(spark=spark, sources=_sources(tx, users))
    ids = pl.DataFrame({"user_id": [1, 4, 9]}, schema={"user_id": pl.Int64})
    bounds = {"lo": T0 + timedelta(hours=1), "hi": T0 + timedelta(hours=4)}
    try:
        for index in SPARK_SHAPES:
            _check_shape(executor, index, ids, bounds, "spark")
    finally:
        executor.close()
