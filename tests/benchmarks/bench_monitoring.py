"""Benchmark: the cost of drift monitoring (profile + drift check) on a materialized write.

Cases (rows: 1M full, 100k quick), each a second write to a fresh store (the first write is
the reference, untimed), best of several runs:

- ``write, drift on`` vs ``write, drift off`` (same data, ``drift.enabled=False``): target
  ratio <= 1.25 (profiling adds at most 25 %).
- the same with exact profiles (``drift.sample_rows`` above the row count), for information.
- the profile pass alone against a raw ``deltalake.write_deltalake`` of the same frame.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from deltalake import write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Measurement, time_best

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
from tauro_workbench.config import DriftConfig
from tauro_workbench.monitoring.profile import profile_frame
from tauro_workbench.stores.materialized import MaterializedFeatureStore

SCHEMA = FeatureGroupSchema(
    name="bench_transactions",
    entity_keys=["transaction_id"],
    timestamp_key="event_time",
    features=[
        FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL),
        FeatureSchema("items", DataType.INT, FeatureType.NUMERICAL),
        FeatureSchema("risk_score", DataType.DOUBLE, FeatureType.NUMERICAL),
        FeatureSchema("channel", DataType.STRING, FeatureType.CATEGORICAL),
        FeatureSchema("merchant_id", DataType.STRING, FeatureType.CATEGORICAL),
        FeatureSchema("is_fraud", DataType.BOOLEAN, FeatureType.CATEGORICAL),
    ],
)


def frame(rows: int, *, seed: int, shift: float = 0.0) -> pl.DataFrame:
    """Return ``rows`` synthetic transactions (3 numeric, 3 categorical features)."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "transaction_id": np.arange(rows, dtype=np.int64),
            "event_time": pl.Series(rng.integers(0, 30 * 86400 * 10**6, rows)).cast(pl.Duration("us"))
            + start,
            "amount": rng.lognormal(3.0 + shift, 0.8, rows),
            "items": rng.poisson(3, rows).astype(np.int32),
            "risk_score": rng.random(rows),
            "channel": rng.choice(["web", "app", "store"], rows),
            "merchant_id": [f"m_{i:03d}" for i in rng.zipf(1.3, rows) % 500],
            "is_fraud": rng.random(rows) < 0.01,
        }
    ).with_columns(pl.col("event_time").dt.cast_time_unit("us"))


def second_write(reference: pl.DataFrame, data: pl.DataFrame, drift: dict[str, Any]) -> float:
    """Return the seconds of a second write to a fresh store (the first one is the reference)."""
    root = Path(tempfile.mkdtemp(prefix="bench_monitoring_"))
    try:
        store = MaterializedFeatureStore(storage_path=root, config={"drift": drift})
        store.register_features(SCHEMA)
        store.write_features(SCHEMA.name, reference)
        started = time.perf_counter()
        store.write_features(SCHEMA.name, data)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(scale: str) -> list[Measurement]:
    rows = 1_000_000 if scale == "full" else 100_000
    repeat = 5 if scale == "full" else 3
    reference = frame(rows, seed=1)
    data = frame(rows, seed=2)
    label = f"{rows:,} rows"
    cases: dict[str, dict[str, Any]] = {
        "off": {"enabled": False},
        "on": {"enabled": True},
        "exact": {"enabled": True, "sample_rows": rows + 1},
    }
    second_write(reference, data, cases["off"])  # warm-up: imports, Delta, registry
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):  # interleaved, so that load from other processes hits every case alike
        for name, drift in cases.items():
            times[name].append(second_write(reference, data, drift))
    off, on, exact = (min(times[name]) for name in ("off", "on", "exact"))

    config = DriftConfig()
    ref_profile = profile_frame(SCHEMA, reference)[0]
    profile_s = time_best(
        lambda: profile_frame(SCHEMA, data, reference=ref_profile, sample_rows=config.sample_rows),
        repeat=repeat,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_monitoring_raw_"))
    counter = iter(range(1_000))
    arrow = data.to_arrow()
    try:
        raw_s = time_best(lambda: write_deltalake(str(tmp / f"t{next(counter)}"), arrow), repeat=repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        Measurement(
            "monitoring",
            f"write {label}, drift on vs off",
            on,
            {"write, drift off": off},
            target_ratio=1.25,
            extra={"profile_pass_s": profile_s, "sample_rows": config.sample_rows},
        ),
        Measurement(
            "monitoring",
            f"write {label}, exact profiles vs off",
            exact,
            {"write, drift off": off},
            extra={"sample_rows": rows + 1},
        ),
        Measurement(
            "monitoring",
            f"profile pass {label} vs raw Delta write",
            profile_s,
            {"deltalake.write_deltalake": raw_s},
            target_ratio=0.25,
        ),
    ]
