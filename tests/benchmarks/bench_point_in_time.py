"""Training-set build: our ``get_historical_features`` against hand-written joins on the same data.

Data (written once per case through :class:`MaterializedFeatureStore`, so the Delta table holds
a real ``_tauro_seq``): ``entity_rows / 10`` entities, one label per entity row, 10 float
features per feature row, a 7-day ttl, times over one year. Sizes: ``small`` 10k x 100k,
``medium`` 200k x 2M, ``large`` 1M x 10M (``--scale quick`` runs small and medium, ``full``
all three; ``python tests/benchmarks/bench_point_in_time.py --size small`` runs one size). Shapes: ``uniform`` (every entity alike) and ``skewed`` (1% of the entities hold
half the feature rows and half the entity rows). Variants: ``no created time`` (event times to
the microsecond, ties only by chance) and ``created time`` (event times on a 4-hour grid, so
most rows share their event time with another row of the same entity and the group's
``created_timestamp_key`` decides the winner).

Ours is ``store.get_historical_features(scan of the entity file, 10 features).collect()`` with
every guarantee (input order, ttl window, created-time and write-order tie-breaks, UTC), the
store opened once per process (as a session holds it), so every timed call pays the
registry reads, the Delta log reads and the planning of a steady-state request. Baselines are
what a careful user would hand-write over the same Parquet files (the table's current files):
Polars ``join_asof`` (features sorted by event time, then created time), a Polars range join
(equi-join + window filter + latest), DuckDB ``ASOF JOIN`` (a struct inequality carries the
created time) and a DuckDB range join (``QUALIFY row_number()``). Every method runs in its own
spawned process that first imports the same libraries (polars, pyarrow, duckdb, deltalake and
the store), so its peak RSS (VmHWM) compares like with like; the best of ``repeat`` runs is
reported (15 runs at small size, 3 at medium, 2 at large). A range join whose candidate pairs exceed a budget is skipped (it would need tens of
GB) and the reason is recorded; a method past its time budget is stopped. Each method's
(rows, matched rows, checksum) is recorded so a disagreeing method shows.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Measurement, _child, current_rss_mb, peak_rss_mb, run_isolated

SIZES = {
    "small": (10_000, 100_000),
    "medium": (200_000, 2_000_000),
    "large": (1_000_000, 10_000_000),
}
SCALES = {"quick": ("small", "medium"), "full": ("small", "medium", "large")}
# Best of this many runs per method: a small case takes ~20 ms, where a shared machine's noise
# swings single runs by +-50%, so it gets more runs (the same for every method).
REPEATS = {"small": 15, "medium": 3, "large": 2}
FEATURES = tuple(f"f{i}" for i in range(10))
GROUP = "bench"
TTL = timedelta(days=7)
PAIR_BUDGET = 400_000_000  # candidate pairs a range join may materialize (~10 GB beyond)
TIME_BUDGET_S = 240.0
START = datetime(2025, 1, 1, tzinfo=UTC)
GRID_US = 4 * 3600 * 1_000_000  # event-time grid of the created-time variant


def generate(
    directory: Path, entity_rows: int, feature_rows: int, skewed: bool, created: bool, seed: int = 7
) -> dict[str, Any]:
    """Write the group through the store and the entity rows to Parquet; return paths and counts."""
    from deltalake import DeltaTable

    from tauro_workbench import (
        DataType,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        MaterializedFeatureStore,
    )

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
    if created:
        event_us = start_us + rng.integers(0, span_us // GRID_US, feature_rows) * GRID_US
    else:
        event_us = start_us + rng.integers(0, span_us, feature_rows)
    columns: dict[str, Any] = {"entity_id": feature_ids, "event_time": pl.Series(event_us).cast(times)}
    if created:
        # Written up to an hour after the event: distinct per row, so every method agrees.
        columns["created"] = pl.Series(event_us + rng.integers(0, 3_600_000_000, feature_rows)).cast(times)
    columns.update({name: rng.standard_normal(feature_rows) for name in FEATURES})
    frame = pl.DataFrame(columns)
    tied = int(frame.select(pl.struct("entity_id", "event_time").is_duplicated().sum()).item())
    store = MaterializedFeatureStore(
        storage_path=directory / "repo", config={"drift": {"on_drift": "ignore"}}
    )
    store.register_features(
        FeatureGroupSchema(
            name=GROUP,
            entity_keys=["entity_id"],
            timestamp_key="event_time",
            created_timestamp_key="created" if created else None,
            ttl=TTL,
            features=[FeatureSchema(name, DataType.DOUBLE, FeatureType.NUMERICAL) for name in FEATURES],
        )
    )
    store.write_features(GROUP, frame)
    del frame
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
        "repo": str(directory / "repo"),
        "entity": str(directory / "entity.parquet"),
        "features": DeltaTable(store.table_uri(GROUP)).file_uris(),
        "created": created,
        "pairs": int((per_entity * per_feature).sum()),
        "tied_rows": tied,
    }


def _summary(frame: pl.DataFrame) -> tuple[int, int, float]:
    """Rows, matched rows and a checksum, so methods can be compared for agreement."""
    return frame.height, int(frame["f0"].is_not_null().sum()), round(float(frame["f0"].fill_null(0).sum()), 3)


_STORES: dict[str, Any] = {}


def _ours(paths: dict[str, Any], engine: str) -> pl.DataFrame:
    from tauro_workbench import MaterializedFeatureStore

    # One store per process, as a notebook session or a Workbench holds it: the first call
    # also opens the table (and reconciles its log), later calls are steady-state requests.
    store = _STORES.get(paths["repo"])
    if store is None:  # not setdefault: its argument would build (and time) a new store every call
        store = _STORES[paths["repo"]] = MaterializedFeatureStore(storage_path=paths["repo"])
    names = [f"{GROUP}.{name}" for name in FEATURES]
    entity = pl.scan_parquet(paths["entity"])
    return store.get_historical_features(entity, names, timestamp_column="ts", engine=engine).collect()  # type: ignore[arg-type]


def _order(paths: dict[str, Any]) -> list[str]:
    return ["event_time", "created"] if paths["created"] else ["event_time"]


def _polars_join_asof(paths: dict[str, Any]) -> pl.DataFrame:
    entity = pl.scan_parquet(paths["entity"]).sort("ts")
    features = pl.scan_parquet(paths["features"]).select(
        "entity_id", "event_time", *FEATURES, *_order(paths)[1:]
    )
    return (
        entity.join_asof(
            features.sort(_order(paths)),
            left_on="ts",
            right_on="event_time",
            by="entity_id",
            tolerance=TTL,
            check_sortedness=False,
        )
        .select("entity_id", "ts", "label", *FEATURES)
        .collect()
    )


def _polars_range_join(paths: dict[str, Any]) -> pl.DataFrame:
    entity = pl.scan_parquet(paths["entity"]).with_row_index("row")
    features = pl.scan_parquet(paths["features"]).select(
        "entity_id", "event_time", *FEATURES, *_order(paths)[1:]
    )
    window = (pl.col("event_time") <= pl.col("ts")) & (pl.col("event_time") >= pl.col("ts") - TTL)
    latest = (
        entity.select("row", "entity_id", "ts")
        .join(features, on="entity_id")
        .filter(window)
        .sort(_order(paths))
        .group_by("row")
        .last()
        .select("row", *FEATURES)
    )
    return entity.join(latest, on="row", how="left").sort("row").drop("row").collect()


def _duckdb(sql: str, paths: dict[str, Any]) -> pl.DataFrame:
    import duckdb

    con = duckdb.connect()
    try:
        return con.sql(sql, params={"entity": paths["entity"], "features": paths["features"]}).pl()
    finally:
        con.close()


def _duckdb_asof(paths: dict[str, Any]) -> pl.DataFrame:
    cols = ", ".join(
        f"CASE WHEN f.event_time >= e.ts - INTERVAL 7 DAY THEN f.{c} END AS {c}" for c in FEATURES
    )
    if paths["created"]:
        # ASOF picks any row among equal event times: order on (event time, created time).
        on = "{'t': e.ts, 'c': '294247-01-01'::TIMESTAMPTZ} >= {'t': f.event_time, 'c': f.created}"
    else:
        on = "e.ts >= f.event_time"
    sql = (
        f"SELECT e.*, {cols} FROM read_parquet($entity) e "
        f"ASOF LEFT JOIN read_parquet($features) f ON e.entity_id = f.entity_id AND {on}"
    )
    return _duckdb(sql, paths)


def _duckdb_range_join(paths: dict[str, Any]) -> pl.DataFrame:
    cols = ", ".join(f"f.{c}" for c in FEATURES)
    order = ", ".join(f"f.{c} DESC" for c in _order(paths))
    sql = (
        f"SELECT e.entity_id, e.ts, e.label, {cols} "
        "FROM (SELECT *, row_number() OVER () AS row FROM read_parquet($entity)) e "
        "LEFT JOIN read_parquet($features) f ON e.entity_id = f.entity_id "
        "AND f.event_time <= e.ts AND f.event_time >= e.ts - INTERVAL 7 DAY "
        f"QUALIFY row_number() OVER (PARTITION BY e.row ORDER BY {order}) = 1 ORDER BY e.row"
    )
    return _duckdb(sql, paths)


METHODS = {
    "ours": lambda p: _ours(p, "polars"),
    "ours_duckdb": lambda p: _ours(p, "duckdb"),
    "polars_join_asof": _polars_join_asof,
    "polars_range_join": _polars_range_join,
    "duckdb_asof_join": _duckdb_asof,
    "duckdb_range_join": _duckdb_range_join,
}


def measure(method: str, paths: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Run ``method`` ``repeat`` times in this (child) process; return the best time and a summary."""
    import deltalake  # noqa: F401  (every method starts from the same imports)
    import duckdb  # noqa: F401
    import pyarrow  # noqa: F401

    import tauro_workbench.stores.materialized  # noqa: F401

    base = current_rss_mb()
    best = best_cpu = float("inf")
    summary: tuple[int, int, float] | None = None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        frame = METHODS[method](paths)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        summary = _summary(frame)
        del frame
    return {"best_s": best, "cpu_s": best_cpu, "summary": summary, "peak_mb": peak_rss_mb(), "base_mb": base}


def _isolated(method: str, paths: dict[str, Any], repeat: int) -> dict[str, Any]:
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
    result = outcome["result"]
    return {k: result[k] for k in ("peak_mb", "base_mb", "cpu_s", "summary")} | {"seconds": result["best_s"]}


def run_case(
    size: str, shape: str, created: bool, *, repeat: int, methods: tuple[str, ...] = tuple(METHODS)
) -> Measurement:
    """Generate one case and measure ``methods`` on it."""
    entity_rows, feature_rows = SIZES[size]
    variant = "created time" if created else "no created time"
    with tempfile.TemporaryDirectory(prefix="bench_pit_") as tmp:
        # Generated in a child so this process stays small while the methods run.
        paths = run_isolated(generate, Path(tmp), entity_rows, feature_rows, shape == "skewed", created)[
            "result"
        ]
        load_before = os.getloadavg()[0]
        outcomes: dict[str, dict[str, Any]] = {}
        for method in methods:
            if "range_join" in method and paths["pairs"] > PAIR_BUDGET:
                outcomes[method] = {
                    "error": f"skipped: {paths['pairs']:,} candidate pairs exceed the budget of {PAIR_BUDGET:,}"
                }
                continue
            outcomes[method] = _isolated(method, paths, repeat)
            print(f"  {size} {shape} {variant} {method}: {outcomes[method]}", flush=True)
    ours = outcomes.get("ours", {})
    baselines = {m: o["seconds"] for m, o in outcomes.items() if not m.startswith("ours") and "seconds" in o}
    fastest = min(baselines, key=baselines.__getitem__) if baselines else None
    return Measurement(
        benchmark="point_in_time",
        case=f"{size} {shape} {variant}: {entity_rows:,} x {feature_rows:,} x {len(FEATURES)} features, ttl 7d",
        ours_s=ours.get("seconds", float("nan")),
        baselines_s=baselines,
        target_ratio=1.3,
        extra={
            "size": size,
            "shape": shape,
            "created_time": created,
            "seconds": {m: o.get("seconds") for m, o in outcomes.items()},
            "cpu_s": {m: o.get("cpu_s") for m, o in outcomes.items()},
            "peak_mb": {m: o.get("peak_mb") for m, o in outcomes.items()},
            "base_mb": {m: o.get("base_mb") for m, o in outcomes.items()},
            "peak_ok": None
            if fastest is None or "peak_mb" not in ours
            else ours["peak_mb"] <= outcomes[fastest]["peak_mb"],
            "not_measured": {m: o["error"] for m, o in outcomes.items() if "error" in o},
            "summaries(rows, matched, checksum)": {m: o.get("summary") for m, o in outcomes.items()},
            "disagree": sorted(
                m for m, o in outcomes.items() if "summary" in o and o["summary"] != ours.get("summary")
            ),
            "candidate_pairs": paths["pairs"],
            "rows_in_event_time_ties": paths["tied_rows"],
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    )


def run(scale: str) -> list[Measurement]:
    """Measure every size of ``scale`` ("quick" or "full"), both shapes, with and without created time."""
    rows = []
    for size in SCALES[scale]:
        repeat = REPEATS[size]
        for shape in ("uniform", "skewed"):
            for created in (False, True):
                rows.append(run_case(size, shape, created, repeat=repeat))
    return rows


_COLUMNS = ("polars_join_asof", "polars_range_join", "duckdb_asof_join", "duckdb_range_join")


def markdown(rows: list[Measurement] | list[dict[str, Any]]) -> str:
    """Return the README table: every case, seconds and peak MB of ours and each baseline."""

    def cell(extra: dict[str, Any], method: str) -> str:
        seconds = extra["seconds"].get(method)
        if seconds is None:
            return "skipped" if method in extra["not_measured"] else "-"
        return f"{seconds:.3f} s / {extra['peak_mb'][method]:.0f} MB"

    lines = [
        "| size | shape | created time | ours | ratio | ours (DuckDB match) | Polars join_asof "
        "| Polars range join | DuckDB ASOF | DuckDB range join | peak <= fastest's |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for row in rows:
        data = row.to_dict() if isinstance(row, Measurement) else row
        extra = data["extra"]
        ratio = "-" if data["ratio"] is None else f"{data['ratio']:.2f}x"
        fastest = "" if data["best_baseline"] is None else f" (vs {data['best_baseline'][0]})"
        ok = {True: "yes", False: "no", None: "-"}[extra["peak_ok"]]
        lines.append(
            f"| {extra['size']} | {extra['shape']} | {'yes' if extra['created_time'] else 'no'} "
            f"| {cell(extra, 'ours')} | {ratio}{fastest} | {cell(extra, 'ours_duckdb')} | "
            + " | ".join(cell(extra, m) for m in _COLUMNS)
            + f" | {ok} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(
        description="Print the saved table, or with --size measure one size (saved to "
        "results/point_in_time_<size>.json, outside run.py's results)."
    )
    parser.add_argument("--size", choices=sorted(SIZES))
    args = parser.parse_args()
    results = Path(__file__).resolve().parent / "results"
    if args.size is None:
        print(markdown(json.loads((results / "bench_point_in_time.json").read_text())))
    else:
        measured = [
            run_case(args.size, shape, created, repeat=REPEATS[args.size])
            for shape in ("uniform", "skewed")
            for created in (False, True)
        ]
        results.mkdir(exist_ok=True)
        (results / f"point_in_time_{args.size}.json").write_text(
            json.dumps([m.to_dict() for m in measured], indent=2, default=str)
        )
        print(markdown(measured))
