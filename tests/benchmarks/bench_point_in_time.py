"""Training-set build: our point-in-time join against hand-written joins on the same data.

Data (written once per shape to Parquet in a temp dir; every method scans the same files):
entity rows over ``entity_rows / 10`` entities with one label each, feature rows with an event
time, a ``_tauro_seq`` write sequence and 10 float features, times uniform over one year, a
7-day ttl. Shapes: ``uniform`` (every entity alike) and ``skewed`` (1% of the entities hold half
the feature rows and half the entity rows).

Ours is ``point_in_time_join`` with every guarantee (input order, ttl window, tie-breaking on
``_tauro_seq``, UTC handling). Baselines are what a careful user would hand-write: Polars
``join_asof``, a Polars range join (equi-join + window filter + latest), DuckDB ``ASOF JOIN``
and a DuckDB range join (the last two read the Parquet files directly). Each method runs in
its own process (``run_isolated``-style) so its peak RSS (VmHWM) is its own; the best of
``repeat`` runs is reported. A range join whose candidate pairs exceed a budget is skipped and the reason
is recorded in ``extra`` (it would need tens of GB); a method past its time budget is stopped.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tauro_workbench.engines.pit import PitEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Measurement, _child, peak_rss_mb, run_isolated

SCALES = {"quick": (100_000, 1_000_000), "full": (1_000_000, 10_000_000)}
FEATURES = tuple(f"f{i}" for i in range(10))
TTL = timedelta(days=7)
PAIR_BUDGET = 400_000_000  # candidate pairs a range join may materialize (~10 GB beyond)
TIME_BUDGET_S = 240.0
START = datetime(2025, 1, 1, tzinfo=UTC)


def generate(
    directory: Path, entity_rows: int, feature_rows: int, skewed: bool, seed: int = 7
) -> dict[str, Any]:
    """Write entity.parquet and features.parquet; return the paths and candidate-pair count."""
    rng = np.random.default_rng(seed)
    entities = max(entity_rows // 10, 1)
    hot = max(entities // 100, 1)
    span_us = 365 * 86_400 * 1_000_000
    start_us = int(START.timestamp() * 1_000_000)

    def ids(n: int) -> np.ndarray:
        if not skewed:
            return rng.integers(0, entities, n)
        half = n // 2
        out = np.concatenate([rng.integers(0, hot, half), rng.integers(hot, entities, n - half)])
        rng.shuffle(out)
        return out

    times = pl.Datetime("us", "UTC")
    feature_ids = ids(feature_rows)
    feature_cols: dict[str, Any] = {
        "entity_id": feature_ids,
        "event_time": pl.Series(start_us + rng.integers(0, span_us, feature_rows)).cast(times),
        "_tauro_seq": rng.integers(0, 1_000, feature_rows),
    }
    feature_cols.update({name: rng.standard_normal(feature_rows) for name in FEATURES})
    pl.DataFrame(feature_cols).write_parquet(directory / "features.parquet")
    entity_ids = ids(entity_rows)
    pl.DataFrame(
        {
            "entity_id": entity_ids,
            "ts": pl.Series(start_us + rng.integers(0, span_us, entity_rows)).cast(times),
            "label": rng.integers(0, 2, entity_rows),
        }
    ).write_parquet(directory / "entity.parquet")
    per_entity = np.bincount(entity_ids, minlength=entities).astype(np.int64)
    per_feature = np.bincount(feature_ids, minlength=entities).astype(np.int64)
    return {
        "entity": str(directory / "entity.parquet"),
        "features": str(directory / "features.parquet"),
        "pairs": int((per_entity * per_feature).sum()),
    }


def _summary(frame: pl.DataFrame) -> tuple[int, int, float]:
    """Rows, matched rows and a checksum, so methods can be compared for agreement."""
    return frame.height, int(frame["f0"].is_not_null().sum()), round(float(frame["f0"].fill_null(0).sum()), 3)


def _ours(paths: dict[str, str], engine: PitEngine) -> pl.DataFrame:
    from tauro_workbench.engines.pit import PointInTimeSpec, point_in_time_join

    spec = PointInTimeSpec(
        ("entity_id",), "ts", "event_time", FEATURES, ttl=TTL, tie_breakers=("_tauro_seq",)
    )
    return point_in_time_join(
        pl.scan_parquet(paths["entity"]), pl.scan_parquet(paths["features"]), spec, engine=engine
    ).collect()


def _polars_join_asof(paths: dict[str, str]) -> pl.DataFrame:
    entity = pl.scan_parquet(paths["entity"]).sort("ts")
    features = pl.scan_parquet(paths["features"]).drop("_tauro_seq").sort("event_time")
    return entity.join_asof(
        features, left_on="ts", right_on="event_time", by="entity_id", tolerance=TTL, check_sortedness=False
    ).collect()


def _polars_range_join(paths: dict[str, str]) -> pl.DataFrame:
    entity = pl.scan_parquet(paths["entity"]).with_row_index("row")
    features = pl.scan_parquet(paths["features"]).drop("_tauro_seq")
    window = (pl.col("event_time") <= pl.col("ts")) & (pl.col("event_time") >= pl.col("ts") - TTL)
    latest = (
        entity.select("row", "entity_id", "ts")
        .join(features, on="entity_id")
        .filter(window)
        .sort("event_time")
        .group_by("row")
        .last()
        .drop("entity_id", "ts")
    )
    return entity.join(latest, on="row", how="left").sort("row").drop("row").collect()


def _duckdb(sql: str, paths: dict[str, str]) -> pl.DataFrame:
    import duckdb

    con = duckdb.connect()
    try:
        return con.sql(sql, params={"entity": paths["entity"], "features": paths["features"]}).pl()
    finally:
        con.close()


def _duckdb_asof(paths: dict[str, str]) -> pl.DataFrame:
    cols = ", ".join(
        f"CASE WHEN f.event_time >= e.ts - INTERVAL 7 DAY THEN f.{c} END AS {c}" for c in FEATURES
    )
    sql = (
        f"SELECT e.*, {cols} FROM read_parquet($entity) e "
        "ASOF LEFT JOIN read_parquet($features) f ON e.entity_id = f.entity_id AND e.ts >= f.event_time"
    )
    return _duckdb(sql, paths)


def _duckdb_range_join(paths: dict[str, str]) -> pl.DataFrame:
    cols = ", ".join(f"f.{c}" for c in FEATURES)
    sql = (
        f"SELECT e.entity_id, e.ts, e.label, {cols} "
        "FROM (SELECT *, row_number() OVER () AS row FROM read_parquet($entity)) e "
        "LEFT JOIN read_parquet($features) f ON e.entity_id = f.entity_id "
        "AND f.event_time <= e.ts AND f.event_time >= e.ts - INTERVAL 7 DAY "
        "QUALIFY row_number() OVER (PARTITION BY e.row ORDER BY f.event_time DESC) = 1 ORDER BY e.row"
    )
    return _duckdb(sql, paths)


METHODS = {
    "ours_polars": lambda p: _ours(p, "polars"),
    "ours_duckdb": lambda p: _ours(p, "duckdb"),
    "polars_join_asof": _polars_join_asof,
    "polars_range_join": _polars_range_join,
    "duckdb_asof_join": _duckdb_asof,
    "duckdb_range_join": _duckdb_range_join,
}


def measure(method: str, paths: dict[str, str], repeat: int) -> dict[str, Any]:
    """Run ``method`` ``repeat`` times in this (child) process; return the best time and a summary."""
    best = float("inf")
    summary: tuple[int, int, float] | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        frame = METHODS[method](paths)
        best = min(best, time.perf_counter() - start)
        summary = _summary(frame)
        del frame
    return {"best_s": best, "summary": summary, "peak_mb": peak_rss_mb()}


def _isolated(method: str, paths: dict[str, str], repeat: int) -> dict[str, Any]:
    """Like ``harness.run_isolated`` but stops the child when it overruns ``TIME_BUDGET_S``."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_child, args=(measure, (method, paths, repeat), results))
    proc.start()
    try:
        outcome = results.get(timeout=TIME_BUDGET_S * repeat)
    except queue.Empty:
        proc.terminate()
        proc.join(timeout=30)
        return {"error": f"stopped after {TIME_BUDGET_S * repeat:.0f} s"}
    proc.join(timeout=30)
    if outcome["error"]:
        return {"error": outcome["error"]}
    return {
        "seconds": outcome["result"]["best_s"],
        "peak_mb": outcome["result"]["peak_mb"],
        "summary": outcome["result"]["summary"],
    }


def run(scale: str) -> list[Measurement]:
    """Measure both shapes at ``scale`` ("quick" or "full")."""
    entity_rows, feature_rows = SCALES[scale]
    repeat = 3 if scale == "quick" else 2
    rows = []
    for shape in ("uniform", "skewed"):
        with tempfile.TemporaryDirectory(prefix="bench_pit_") as tmp:
            # Generated in a child so this process stays small while the methods run.
            paths = run_isolated(generate, Path(tmp), entity_rows, feature_rows, shape == "skewed")["result"]
            load_before = os.getloadavg()[0]
            outcomes: dict[str, dict[str, Any]] = {}
            for method in METHODS:
                if "range_join" in method and paths["pairs"] > PAIR_BUDGET:
                    outcomes[method] = {
                        "error": f"skipped: {paths['pairs']:,} candidate pairs exceed the budget of {PAIR_BUDGET:,}"
                    }
                    continue
                outcomes[method] = _isolated(method, paths, repeat)
                print(f"  {shape} {method}: {outcomes[method]}", flush=True)
        ours = outcomes["ours_polars"]
        baselines = {
            m: o["seconds"] for m, o in outcomes.items() if not m.startswith("ours") and "seconds" in o
        }
        rows.append(
            Measurement(
                benchmark="point_in_time",
                case=f"{shape} {entity_rows:,} x {feature_rows:,} x {len(FEATURES)} features, ttl 7d",
                ours_s=ours.get("seconds", float("nan")),
                baselines_s=baselines,
                target_ratio=1.3,
                extra={
                    "peak_mb": {m: o.get("peak_mb") for m, o in outcomes.items()},
                    "ours_duckdb_s": outcomes["ours_duckdb"].get("seconds"),
                    "not_measured": {m: o["error"] for m, o in outcomes.items() if "error" in o},
                    "summaries(rows, matched, checksum)": {m: o.get("summary") for m, o in outcomes.items()},
                    "candidate_pairs": paths["pairs"],
                    "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    "peak_target_mb": 1024,
                },
            )
        )
    return rows
