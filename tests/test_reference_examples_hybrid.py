"""The reference README's hybrid and pipeline examples (section 7, Pattern 3, Pipeline Integration).

Imports come from tauro_workbench instead of tauro.feature_store / tauro.exec; the example
code is kept as written, with a Tauro-style context and data made up around it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from tauro_workbench import (
    DataType,
    FeatureGroupSchema,
    FeatureSchema,
    FeatureStoreConfig,
    FeatureStoreMode,
    HybridFeatureStore,
    Workbench,
)
from tauro_workbench.pipeline import read_features_node, run_pipeline, write_features_node

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GROUP = FeatureGroupSchema(
    name="group",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("feat1", DataType.DOUBLE)],
)
SIGNALS = FeatureGroupSchema(
    name="user_signals",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("clicks", DataType.BIGINT)],
)


@pytest.fixture
def context(tmp_path: Path) -> SimpleNamespace:
    source = tmp_path / "feat.parquet"
    pl.DataFrame({"user_id": [1, 2], "ts": [T0, T0], "feat1": [0.5, 1.5]}).write_parquet(source)
    return SimpleNamespace(feature_store_path=str(tmp_path / "repo"), sources={"silver.feat": str(source)})


def test_section_7_hybrid_picks_the_engine(context: SimpleNamespace) -> None:
    config = FeatureStoreConfig(mode=FeatureStoreMode.HYBRID, hybrid_threshold_rows=50000)

    store = HybridFeatureStore(context, config=config)

    store.register_features(GROUP)
    store.virtual.define_virtual_features("group", "SELECT user_id, ts, feat1 FROM silver.feat")
    # Will pick the best engine automatically
    data = store.get_features(feature_names=["group.feat1"])
    assert sorted(data.collect()["feat1"].to_list()) == [0.5, 1.5]
    route = store.explain(["group.feat1"])
    assert route.target == "virtual" and store.config.hybrid_threshold_rows == 50000


def test_pattern_3_hybrid_strategy_with_drift_monitoring(tmp_path: Path) -> None:
    context = SimpleNamespace(feature_store_path=str(tmp_path / "ignored"))
    df = pl.DataFrame({"user_id": [1, 2, 3], "ts": [T0] * 3, "clicks": [4, 0, 9]})
    config = FeatureStoreConfig(
        mode=FeatureStoreMode.HYBRID,
        storage_path=str(tmp_path / "gold" / "features"),
        hybrid_threshold_rows=100000,
        auto_materialize_on_read=True,
    )

    store = HybridFeatureStore(context, config=config)
    store.register_features(SIGNALS)

    # Features will be monitored for drift during writes automatically
    # Events are emitted to the MLOps event bus
    store.write_features("user_signals", df)

    assert (tmp_path / "gold" / "features" / "registry.db").is_file()
    [record] = store.metadata.list_writes("user_signals")
    assert record.rows == 3 and record.details["drift"]["verdict"] == "no_reference"
    assert [e.kind for e in store.events.history(kind="features_written")] == ["features_written"]


def test_pipeline_integration(tmp_path: Path) -> None:
    # In a Tauro pipeline definition
    pipeline = {
        "nodes": [
            write_features_node(
                name="materialize_user_features",
                feature_store="materialized",
                feature_group="user_features",
                input_source="process_user_data",
            ),
            read_features_node(
                name="fetch_training_features",
                feature_store="virtualized",
                feature_names=["age", "region", "purchase_count"],
                entity_ids_source="load_entity_ids",
            ),
        ]
    }

    purchases = tmp_path / "purchases.parquet"
    pl.DataFrame({"user_id": [1, 1, 2], "ts": [T0] * 3}).write_parquet(purchases)
    with Workbench(tmp_path / "repo") as wb:
        wb.add_source("silver.purchases", str(purchases))
        wb.register(
            FeatureGroupSchema(
                name="user_features",
                entity_keys=["user_id"],
                timestamp_key="ts",
                features=[FeatureSchema("age", DataType.INT), FeatureSchema("region", DataType.STRING)],
            )
        )
        wb.register(
            FeatureGroupSchema(
                name="purchase_features",
                entity_keys=["user_id"],
                features=[FeatureSchema("purchase_count", DataType.BIGINT)],
            )
        )
        wb.define_virtual(
            "purchase_features",
            sql="SELECT user_id, COUNT(*) AS purchase_count FROM silver.purchases GROUP BY user_id",
        )
        inputs = {
            "process_user_data": pl.DataFrame(
                {"user_id": [1, 2], "ts": [T0, T0], "age": [30, 41], "region": ["eu", "us"]},
                schema_overrides={"age": pl.Int32},
            ),
            "load_entity_ids": pl.DataFrame({"user_id": [2, 1]}),
        }
        run = run_pipeline(wb, pipeline, inputs=inputs)
        fetched = run.frame("fetch_training_features")
    assert fetched.to_dict(as_series=False) == {
        "user_id": [2, 1],
        "age": [41, 30],
        "region": ["us", "eu"],
        "purchase_count": [1, 2],
    }
