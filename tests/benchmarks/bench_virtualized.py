"""Virtualized store benchmarks: overhead of a virtual feature query, and Spark vs DuckDB.

1. A virtual feature (per-user sum over a Parquet source) read for 1,000 entity ids through
   ``VirtualizedFeatureStore.get_features`` vs the same hand-written DuckDB query with an
   ``IN`` filter on the same file (target ratio <= 1.15). The store pushes the entity filter
   into the query's ``GROUP BY`` (see ``engines/sql_pushdown.py``); what remains is a fixed
   cost of a few milliseconds per call (the latest-value step in Polars, registering the ids),
   so the ratio falls with the data size. Best of 7 runs: the machine is shared.
2. The same group computed in full on Spark and on DuckDB (``compute_group``), reported.
3. ``materialize`` of a per-row group (the result is as large as the source) into a Delta table,
   each path in its own child process: Spark (executors write the Parquet files, delta-rs
   commits them; ``engines/spark_delta.py``) vs the DuckDB executor (the result is computed on
   the driver, then ``write_features``). Reported: wall time of ``materialize`` and the Python
   driver's peak RSS (VmHWM), before and after the call; on the Spark path also the JVM's peak
   RSS, read from ``/proc`` of the ``java`` child while it runs. The Spark path's Python peak
   stays flat with the data; the driver path's grows with it.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
from harness import Measurement, peak_rss_mb, run_isolated, time_best
from polars.testing import assert_frame_equal

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tauro_workbench.engines.duckdb import DuckDBQueryExecutor
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

SIZES = {"quick": (1_000_000, 100_000), "full": (10_000_000, 1_000_000)}
SQL = "SELECT user_id, SUM(amount) AS total FROM silver.tx GROUP BY user_id"
MATERIALIZE_ROWS = {"quick": 1_000_000, "full": 10_000_000}
PER_ROW_SQL = "SELECT user_id, ts, amount, amount * 2 AS doubled FROM silver.tx"
PER_ROW = FeatureGroupSchema(
    "per_row",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[
        FeatureSchema("amount", "DOUBLE", "NUMERICAL"),
        FeatureSchema("doubled", "DOUBLE", "NUMERICAL"),
    ],
)
START_US = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)


def _data(folder: Path, rows: int, users: int) -> Path:
    rng = np.random.default_rng(7)
    path = folder / "tx.parquet"
    pl.DataFrame({"user_id": rng.integers(0, users, rows), "amount": rng.random(rows)}).write_parquet(path)
    return path


def _store(folder: Path, executor: object) -> VirtualizedFeatureStore:
    store = VirtualizedFeatureStore(query_executor=executor, config={"storage_path": str(folder / "repo")})  # type: ignore[arg-type]
    store.register_features(
        FeatureGroupSchema(
            "spend", entity_keys=["user_id"], features=[FeatureSchema("total", "DOUBLE", "NUMERICAL")]
        )
    )
    store.define_virtual_features("spend", SQL)
    return store


def _per_row_data(folder: Path, rows: int) -> Path:
    rng = np.random.default_rng(11)
    path = folder / "per_row.parquet"
    # microsecond UTC timestamps over one year (Spark cannot read nanosecond Parquet timestamps)
    offsets_us = rng.integers(0, 86_400 * 365, rows) * 1_000_000 + START_US
    pl.DataFrame(
        {
            "user_id": rng.integers(0, max(rows // 10, 1), rows),
            "ts": pl.Series(offsets_us).cast(pl.Datetime("us", "UTC")),
            "amount": rng.random(rows),
        }
    ).write_parquet(path)
    return path


def run(scale: str) -> list[Measurement]:
    # first, so the child processes do not share the machine with this process's Spark session
    materialized = _materialize_measurement(MATERIALIZE_ROWS[scale])
    with tempfile.TemporaryDirectory(prefix="bench_virtualized_") as tmp:
        return [*_read_measurements(Path(tmp), *SIZES[scale]), materialized]


def _read_measurements(folder: Path, rows: int, users: int) -> list[Measurement]:
    """get_features with an entity filter vs hand-written DuckDB; a whole group on Spark vs DuckDB."""
    path = _data(folder, rows, users)
    ids = list(range(0, users, users // 1000))[:1000]
    store = _store(folder, DuckDBQueryExecutor(sources={"silver.tx": str(path)}))
    con = duckdb.connect()

    def ours() -> pl.DataFrame:
        return store.get_features(["spend.total"], entity_ids={"user_id": ids}).collect()

    def raw() -> pl.DataFrame:
        rel = con.sql(
            "SELECT user_id, SUM(amount) AS total FROM read_parquet($p) WHERE user_id IN (SELECT UNNEST($ids)) GROUP BY user_id",
            params={"p": str(path), "ids": ids},
        )
        return pl.from_arrow(rel.to_arrow_table())  # type: ignore[return-value]

    assert_frame_equal(
        ours().drop_nulls().sort("user_id"),
        raw().sort("user_id").cast({"user_id": pl.Int64}),
        check_exact=False,
    )
    results = [
        Measurement(
            "virtualized",
            f"get_features 1k ids / {rows:,} rows",
            time_best(ours, repeat=7),
            {"duckdb_hand_written": time_best(raw, repeat=7)},
            target_ratio=1.15,
        )
    ]

    from tauro_workbench.engines.spark import SparkQueryExecutor, start_local_spark

    spark_store = _store(
        folder, SparkQueryExecutor(spark=start_local_spark("local[2]"), sources={"silver.tx": str(path)})
    )
    spark_s = time_best(lambda: spark_store.compute_group("spend"), repeat=2)
    duck_s = time_best(lambda: store.compute_group("spend"), repeat=2)
    results.append(
        Measurement(
            "virtualized",
            f"full group on Spark vs DuckDB / {rows:,} rows",
            spark_s,
            {"duckdb": duck_s},
            extra={"spark_s": spark_s, "duckdb_s": duck_s},
        )
    )
    return results


def _jvm_peak_mb() -> float | None:
    """Peak RSS (VmHWM, MB) of the ``java`` processes descended from this one; None if none."""
    parents: dict[int, int] = {}
    peaks: dict[int, float] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:  # the process ended while /proc was walked
            continue
        pid = int(status.parent.name)
        parents[pid] = int(fields["PPid"])
        if fields["Name"].strip() == "java" and "VmHWM" in fields:
            peaks[pid] = int(fields["VmHWM"].split()[0]) / 1024
    me = os.getpid()

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == me:
                return True
        return False

    found = [peak for pid, peak in peaks.items() if descends(pid)]
    return sum(found) if found else None


def _materialize_child(engine: str, source: str, folder: str) -> dict[str, Any]:
    """Materialize the per-row group with ``engine`` (runs in a child process)."""
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

    spark: Any = None
    executor: Any
    if engine == "spark":
        from pyspark.sql import SparkSession

        from tauro_workbench.engines.spark import SparkQueryExecutor

        # the settings of tests/conftest.py's session fixture, without the console progress bar
        spark = (
            SparkSession.builder.master("local[2]")
            .appName("bench-virtualized-materialize")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        spark.sql("SELECT 1").collect()  # the first job's start-up is not materialize's cost
        executor = SparkQueryExecutor(spark=spark, sources={"silver.tx": source})
    else:
        executor = DuckDBQueryExecutor(sources={"silver.tx": source})
    store = VirtualizedFeatureStore(query_executor=executor, config={"storage_path": folder})
    store.register_features(PER_ROW)
    store.define_virtual_features("per_row", PER_ROW_SQL)
    target = MaterializedFeatureStore(storage_path=folder, metadata=store.metadata)
    before_mb = peak_rss_mb()
    start = time.perf_counter()
    record = store.materialize("per_row", target)
    seconds = time.perf_counter() - start
    outcome = {
        "seconds": seconds,
        "rows": record.rows,
        "python_peak_before_mb": before_mb,
        "table": target.table_uri("per_row"),
        "files": record.details.get("files"),
    }
    if spark is not None:
        outcome["jvm_peak_mb"] = _jvm_peak_mb()
        spark.stop()
    return outcome


def _materialize_measurement(rows: int) -> Measurement:
    """Materialize ``rows`` per-row results on Spark and on DuckDB, each in its own process."""
    with tempfile.TemporaryDirectory(prefix="bench_virtualized_materialize_") as tmp:
        source = str(_per_row_data(Path(tmp), rows))
        outcomes: dict[str, dict[str, Any]] = {}
        for engine in ("spark", "duckdb"):
            child = run_isolated(_materialize_child, engine, source, str(Path(tmp) / engine))
            outcome = child["result"]
            written = pl.scan_delta(outcome["table"]).select(pl.len()).collect().item()
            assert outcome["rows"] == written == rows, (engine, outcome["rows"], written)
            outcomes[engine] = {
                "materialize_s": round(outcome["seconds"], 3),
                "child_total_s": round(child["seconds"], 3),
                "python_peak_mb": round(child["peak_mb"], 1),
                "python_peak_before_materialize_mb": round(outcome["python_peak_before_mb"], 1),
                **({"files": outcome["files"]} if outcome["files"] else {}),
                **({"jvm_peak_mb": round(outcome["jvm_peak_mb"], 1)} if outcome.get("jvm_peak_mb") else {}),
            }
            print(f"  materialize {rows:,} rows via {engine}: {outcomes[engine]}", flush=True)
    return Measurement(
        "virtualized",
        f"materialize per-row group on Spark vs DuckDB driver path / {rows:,} rows",
        outcomes["spark"]["materialize_s"],
        {"duckdb_driver": outcomes["duckdb"]["materialize_s"]},
        extra={
            f"{engine}_{key}": value for engine, values in outcomes.items() for key, value in values.items()
        },
    )
