"""The reference README's materialized-store examples, run against tauro_workbench.

Imports come from tauro_workbench instead of tauro.feature_store; paths point into tmp_path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import Mock

import polars as pl
import pytest

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType, MaterializedFeatureStore


@pytest.fixture
def user_features_schema() -> FeatureGroupSchema:
    user_age = FeatureSchema(
        name="age",
        data_type=DataType.INT,
        feature_type=FeatureType.NUMERICAL,
        description="User age in years",
        nullable=False,
        metadata={"min": 0, "max": 150, "unit": "years"},
    )
    user_region = FeatureSchema("region", DataType.STRING, FeatureType.CATEGORICAL)
    user_spending = FeatureSchema("purchase_count", DataType.BIGINT, FeatureType.NUMERICAL)
    return FeatureGroupSchema(
        name="user_features",
        version=1,
        entity_keys=["user_id"],
        timestamp_key="event_timestamp",
        description="Core user demographic and behavioral features",
        features=[user_age, user_region, user_spending],
        tags={"team": "data-science", "environment": "production"},
    )


def test_section_5_materialized_store_with_parquet(
    tmp_path: Path, user_features_schema: FeatureGroupSchema
) -> None:
    app_context = Mock()
    app_context.feature_store_path = str(tmp_path / "ignored")
    store = MaterializedFeatureStore(
        context=app_context,
        storage_path=str(tmp_path / "gold" / "features"),
        storage_format="parquet",
    )
    store.register_features(user_features_schema)
    user_features_df = pl.DataFrame(
        {
            "user_id": [123, 456, 789],
            "event_timestamp": [datetime(2025, 1, 1)] * 3,
            "age": [31, 45, 27],
            "region": ["eu", "us", "eu"],
            "purchase_count": [3, 0, 12],
        }
    )
    store.write_features(feature_group="user_features", data=user_features_df, mode="overwrite")
    features = store.get_features(feature_names=["age", "region"], entity_ids={"user_id": [123, 456, 789]})
    assert features.collect().rows() == [(123, 31, "eu"), (456, 45, "us"), (789, 27, "eu")]
    assert list((tmp_path / "gold" / "features" / "offline" / "user_features" / "v1").glob("*.parquet"))


def test_pattern_1_materialized_feature_pipeline(tmp_path: Path) -> None:
    context = Mock()
    context.feature_store_path = str(tmp_path / "repo")
    schema = FeatureGroupSchema(
        name="transaction_features",
        entity_keys=["transaction_id"],
        timestamp_key="transaction_date",
        features=[
            FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("merchant_id", DataType.STRING, FeatureType.CATEGORICAL),
        ],
    )
    store = MaterializedFeatureStore(context)
    store.register_features(schema)
    computed_features_df = pl.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3"],
            "transaction_date": [datetime(2025, 5, 1, 12, tzinfo=UTC)] * 3,
            "amount": [9.5, 120.0, 3.25],
            "merchant_id": ["m1", "m2", "m1"],
        }
    )
    store.write_features("transaction_features", computed_features_df)
    transaction_ids = ["t3", "t1"]
    features = store.get_features(
        feature_names=["amount", "merchant_id"], entity_ids={"transaction_id": transaction_ids}
    )
    assert features.collect().rows() == [("t3", 3.25, "m1"), ("t1", 9.5, "m1")]
    assert Path(store.table_uri("transaction_features")).is_relative_to(tmp_path / "repo")


def test_pattern_4_point_in_time_queries(tmp_path: Path, user_features_schema: FeatureGroupSchema) -> None:
    store = MaterializedFeatureStore(storage_path=tmp_path / "repo")
    store.register_features(user_features_schema)
    now = datetime.now()
    history = pl.DataFrame(
        {
            "user_id": [1, 1, 2],
            "event_timestamp": [now - timedelta(days=60), now - timedelta(days=1), now - timedelta(days=2)],
            "age": [30, 31, 50],
            "region": ["eu", "us", "eu"],
            "purchase_count": [1, 9, 4],
        }
    )
    store.write_features("user_features", history)
    training_user_ids = [1, 2]
    features = store.get_features(
        feature_names=["age", "purchase_count"],
        entity_ids={"user_id": training_user_ids},
        point_in_time=datetime.now() - timedelta(days=30),
    )
    assert features.collect().rows() == [(1, 30, 1), (2, None, None)]


def test_testing_section_mock_context(tmp_path: Path) -> None:
    test_schema = FeatureGroupSchema(
        name="test_group",
        entity_keys=["id"],
        timestamp_key="ts",
        features=[FeatureSchema("x", DataType.DOUBLE, FeatureType.NUMERICAL)],
    )
    mock_context = Mock()
    mock_context.feature_store_path = str(tmp_path / "test_features")
    store = MaterializedFeatureStore(mock_context)
    store.register_features(test_schema)
    assert "test_group" in store.metadata.list_feature_groups()
    assert (tmp_path / "test_features" / "registry.db").exists()
    assert store.health_check()
