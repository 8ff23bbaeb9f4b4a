"""Benchmark: ``get_features`` for 1,000 ids out of 1M entities on a Delta table.

Ours: ``MaterializedFeatureStore.get_features`` (result cache off, so every call reads). Baseline:
the same latest-value-per-entity query written by hand on ``pl.scan_delta`` with an ``is_in``
filter. Target: under 0.3 s at full scale (``extra["target_s"]``), ratio <= 1.5x.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Measurement, time_best

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
from tauro_workbench.stores.materialized import MaterializedFeatureStore

SCALES = {"quick": (100_000, 2), "full": (1_000_000, 2)}  # entities, rows per entity
FEATURES = [f"f{i}" for i in range(5)]


def _data(entities: int, per_entity: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = entities * per_entity
    start = datetime(2024, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "user_id": rng.permutation(np.repeat(np.arange(entities, dtype=np.int64), per_entity)),
            "ts": pl.datetime_range(
                start, start + timedelta(seconds=n - 1), "1s", eager=True, time_zone="UTC"
            ),
            **{f: rng.normal(size=n) for f in FEATURES},
        }
    )
    return frame


def run(scale: str) -> list[Measurement]:
    """Measure ours against the raw scan_delta baseline at ``scale`` (quick or full)."""
    entities, per_entity = SCALES[scale]
    with tempfile.TemporaryDirectory() as root:
        store = MaterializedFeatureStore(
            storage_path=root, config={"drift": {"enabled": False}, "materialized": {"cache_enabled": False}}
        )
        store.register_features(
            FeatureGroupSchema(
                name="users",
                entity_keys=["user_id"],
                timestamp_key="ts",
                features=[FeatureSchema(f, DataType.DOUBLE) for f in FEATURES],
            )
        )
        started = time.perf_counter()
        store.write_features("users", _data(entities, per_entity))
        write_s = time.perf_counter() - started
        uri = store.table_uri("users")
        ids = np.random.default_rng(1).choice(entities, 1000, replace=False).tolist()

        def ours() -> pl.DataFrame:
            return store.get_features(FEATURES, entity_ids={"user_id": ids}).collect()

        def raw() -> pl.DataFrame:
            return (
                pl.scan_delta(uri)
                .filter(pl.col("user_id").is_in(ids))
                .sort("ts")
                .unique(subset=["user_id"], keep="last")
                .select(["user_id", *FEATURES])
                .collect()
            )

        assert ours().sort("user_id").equals(raw().sort("user_id"))
        ours_s = time_best(ours, repeat=5)
        raw_s = time_best(raw, repeat=5)
        cached = MaterializedFeatureStore(storage_path=root, config={"drift": {"enabled": False}})
        cached.get_features(FEATURES, entity_ids={"user_id": ids}).collect()
        cached_s = time_best(
            lambda: cached.get_features(FEATURES, entity_ids={"user_id": ids}).collect(), repeat=5
        )
    return [
        Measurement(
            benchmark="materialized_get_features",
            case=f"1000 ids of {entities:,} entities x {per_entity} rows",
            ours_s=ours_s,
            baselines_s={"polars_scan_delta_is_in": raw_s},
            target_ratio=1.5,
            extra={
                "target_s": 0.3,
                "passed_target_s": ours_s < 0.3,
                "cached_s": cached_s,
                "write_s": write_s,
            },
        )
    ]
