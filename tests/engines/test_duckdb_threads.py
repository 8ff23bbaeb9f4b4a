"""Many threads on one DuckDB executor: every read succeeds and returns the single-threaded rows.

The executor's cursors share one database and its catalog of views; DuckDB refuses two
transactions replacing one catalog entry at once (a write-write conflict). These tests start
threads together (a barrier) on fresh executors, read one source and many (Parquet, Delta,
frames), run per-query frames of the same name with different rows in every thread, add
sources (a new sealed database) while others read, and read virtual groups through
``VirtualizedFeatureStore``; a hypothesis test interleaves reads and additions at random.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tauro_workbench.engines.duckdb import DuckDBQueryExecutor
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SPEND = pl.DataFrame(
    {
        "user_id": [1, 1, 2, 3, 3, 4],
        "ts": [T0 + timedelta(days=d) for d in (0, 2, 1, 0, 3, 1)],
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    }
)
USERS = pl.DataFrame({"user_id": [1, 2, 3, 4], "age": [30, 40, 50, 60]})
ORDERS = pl.DataFrame({"user_id": [1, 2, 2, 4], "n": [5, 6, 7, 8]})
REGIONS = pl.DataFrame({"user_id": [1, 2, 3, 4], "region": ["eu", "us", "eu", "apac"]})

QUERIES = [
    "SELECT user_id, SUM(amount) AS total FROM silver.spend GROUP BY user_id ORDER BY user_id",
    "SELECT user_id, age FROM silver.users ORDER BY user_id",
    "SELECT user_id, SUM(n) AS n FROM silver.orders GROUP BY user_id ORDER BY user_id",
    "SELECT user_id, region FROM bronze.regions ORDER BY user_id",
    "SELECT s.user_id, s.amount, u.age, r.region FROM silver.spend AS s JOIN silver.users AS u "
    "ON s.user_id = u.user_id JOIN bronze.regions AS r ON r.user_id = s.user_id ORDER BY s.amount",
]


def _sources(root: Path) -> dict[str, Any]:
    """Parquet (a file, a folder of two), Delta and a frame source under ``root``."""
    SPEND.write_parquet(root / "spend.parquet")
    (root / "users").mkdir()
    USERS.head(2).write_parquet(root / "users" / "a.parquet")
    USERS.tail(2).write_parquet(root / "users" / "b.parquet")
    write_deltalake(str(root / "orders"), ORDERS.to_arrow())
    return {
        "silver.spend": str(root / "spend.parquet"),
        "silver.users": str(root / "users"),
        "silver.orders": str(root / "orders"),
        "bronze.regions": REGIONS,
    }


def _run_together(workers: list[Callable[[], None]]) -> list[BaseException]:
    """Run each worker in its own thread, all released at once; return what they raised."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            barrier.wait(30)
            work()
        except BaseException as err:  # reported by the caller
            errors.append(err)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a reader hung"
    return errors


def _expected(sources: dict[str, Any], queries: list[str]) -> list[pl.DataFrame]:
    """The queries' rows on a fresh executor, one at a time."""
    with DuckDBQueryExecutor(sources=sources) as executor:
        return [executor.execute(q).collect() for q in queries]


def test_eight_threads_read_one_source_on_a_fresh_executor(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    (expected,) = _expected(sources, QUERIES[:1])
    results: list[pl.DataFrame] = []
    with DuckDBQueryExecutor(sources=sources) as executor:  # no cursor has seen a source yet

        def work() -> None:
            for _ in range(20):
                results.append(executor.execute(QUERIES[0]).collect())

        assert _run_together([work] * 8) == []
    assert len(results) == 160
    for got in results:
        assert_frame_equal(got, expected)


def test_eight_threads_read_different_sources_while_one_adds_sources(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    expected = _expected(sources, QUERIES)
    results: list[tuple[int, pl.DataFrame]] = []
    added: list[str] = []
    with DuckDBQueryExecutor(sources=sources) as executor:

        def reader(offset: int) -> Callable[[], None]:
            def work() -> None:
                for i in range(20):
                    k = (offset + i) % len(QUERIES)
                    results.append((k, executor.execute(QUERIES[k]).collect()))

            return work

        def adder() -> None:
            # each new Parquet file is outside the sealed database's allowed_paths: a new one
            for i in range(6):
                path = tmp_path / f"extra_{i}.parquet"
                pl.DataFrame({"user_id": [i], "x": [i * 10]}).write_parquet(path)
                executor.sources.add(f"silver.extra_{i}", str(path))
                executor.register_frame(f"bronze.extra_{i}", pl.DataFrame({"y": [i]}))
                added.append(f"silver.extra_{i}")

        assert _run_together([reader(k) for k in range(8)] + [adder]) == []
        assert len(added) == 6
        for i in range(6):
            got = executor.execute(
                f"SELECT e.x, f.y FROM silver.extra_{i} AS e CROSS JOIN bronze.extra_{i} AS f"
            ).collect()
            assert got.rows() == [(i * 10, i)]
    assert len(results) == 160
    for k, got in results:
        assert_frame_equal(got, expected[k])


def test_same_frame_name_in_every_thread_sees_only_its_own_rows(tmp_path: Path) -> None:
    sql = "SELECT s.user_id, s.amount FROM silver.spend AS s JOIN keys AS k ON s.user_id = k.user_id ORDER BY s.amount"
    mismatches: list[tuple[int, list[Any]]] = []
    with DuckDBQueryExecutor(sources=_sources(tmp_path)) as executor:

        def reader(user: int) -> Callable[[], None]:
            keys = pl.DataFrame({"user_id": [user]})
            want = SPEND.filter(pl.col("user_id") == user).select("user_id", "amount").rows()

            def work() -> None:
                for _ in range(20):
                    got = executor.execute(sql, frames={"keys": keys}).collect().rows()
                    if got != want:
                        mismatches.append((user, got))

            return work

        assert _run_together([reader(1 + k % 4) for k in range(8)]) == []
    assert mismatches == []


def test_a_source_rewritten_between_reads_is_read_anew_by_every_cursor(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    with DuckDBQueryExecutor(sources=sources) as executor:
        sql = "SELECT SUM(amount) AS total FROM silver.spend"

        def work() -> None:
            for _ in range(5):
                executor.execute(sql).collect()

        assert _run_together([work] * 6) == []  # six cursors in the pool's history
        SPEND.with_columns(pl.col("amount") * 10).write_parquet(tmp_path / "spend.parquet")
        totals: list[float] = []

        def again() -> None:
            for _ in range(5):
                totals.append(executor.execute(sql).collect().item())

        assert _run_together([again] * 6) == []
    assert totals == [210.0] * 30


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _store(root: Path) -> VirtualizedFeatureStore:
    store = VirtualizedFeatureStore({"sources": _sources(root)}, storage_path=root / "repo")
    store.register_features(
        FeatureGroupSchema(
            "spend", entity_keys=["user_id"], timestamp_key="ts", features=[FeatureSchema("amount", "DOUBLE")]
        )
    )
    store.define_virtual_features("spend", "SELECT user_id, ts, amount FROM silver.spend")
    store.register_features(
        FeatureGroupSchema(
            "profile",
            entity_keys=["user_id"],
            timestamp_key="ts",
            features=[FeatureSchema("age", "BIGINT"), FeatureSchema("region", "STRING")],
        )
    )
    store.define_virtual_features(
        "profile",
        "SELECT u.user_id, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS ts, u.age, r.region "
        "FROM silver.users AS u JOIN bronze.regions AS r ON u.user_id = r.user_id",
    )
    return store


def test_virtual_groups_read_from_eight_threads(tmp_path: Path) -> None:
    oracle, store = _store(_mkdir(tmp_path / "oracle")), _store(_mkdir(tmp_path / "shared"))
    requests: list[tuple[list[str], dict[str, list[int]] | None]] = [
        (["spend.amount"], {"user_id": [1]}),
        (["spend.amount"], {"user_id": [3, 1, 2, 9]}),
        (["profile.age", "profile.region"], {"user_id": [4, 2]}),
        (["spend.amount"], None),
    ]
    try:
        expected = [oracle.get_features(n, entity_ids=e).collect() for n, e in requests]
        results: list[tuple[int, pl.DataFrame]] = []

        def reader(offset: int, spread: bool) -> Callable[[], None]:
            def work() -> None:
                for i in range(20):
                    k = (offset + i) % len(requests) if spread else 0
                    names, ids = requests[k]
                    results.append((k, store.get_features(names, entity_ids=ids).collect()))

            return work

        # half the threads hammer one group with one request, half spread over both groups
        assert _run_together([reader(k, spread=k % 2 == 1) for k in range(8)]) == []
        assert len(results) == 160
        for k, got in results:
            assert_frame_equal(got, expected[k])
    finally:
        oracle.executor.close()
        store.executor.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plans=st.lists(
        st.lists(
            st.one_of(st.integers(0, len(QUERIES) - 1), st.sampled_from(["parquet", "frame"])),
            min_size=1,
            max_size=8,
        ),
        min_size=2,
        max_size=6,
    )
)
def test_random_interleavings_of_reads_and_new_sources(tmp_path_factory: Any, plans: list[list[Any]]) -> None:
    root = tmp_path_factory.mktemp("interleave")
    sources = _sources(root)
    expected = _expected(sources, QUERIES)
    wrong: list[str] = []
    with DuckDBQueryExecutor(sources=sources) as executor:

        def worker(t: int, plan: list[Any]) -> Callable[[], None]:
            def work() -> None:
                for i, step in enumerate(plan):
                    if isinstance(step, int):
                        got = executor.execute(QUERIES[step]).collect()
                        if not got.equals(expected[step]):
                            wrong.append(f"thread {t} query {step}: {got}")
                        continue
                    name, value = f"new_{t}_{i}", t * 100 + i
                    if step == "parquet":  # a new file: the next queries run on a new database
                        path = root / f"{name}.parquet"
                        pl.DataFrame({"v": [value]}).write_parquet(path)
                        executor.sources.add(f"silver.{name}", str(path))
                        got_v = executor.execute(f"SELECT v FROM silver.{name}").collect().item()
                    else:
                        executor.register_frame(f"bronze.{name}", pl.DataFrame({"v": [value]}))
                        got_v = executor.execute(f"SELECT v FROM bronze.{name}").collect().item()
                    if got_v != value:
                        wrong.append(f"thread {t} source {name}: {got_v}")

            return work

        assert _run_together([worker(t, p) for t, p in enumerate(plans)]) == []
    assert wrong == []
