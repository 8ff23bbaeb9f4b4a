"""Deterministic result objects and a small registry, shared by the display and lineage tests.

Nothing here depends on the clock: times are fixed, so displays can be compared with golden files
(``tests/golden/``; regenerate with ``TAURO_UPDATE_GOLDEN=1``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
from tauro_workbench.history import WriteRecord
from tauro_workbench.monitoring.drift import DriftReport, FeatureDrift
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.stores.base import HealthReport
from tauro_workbench.stores.promotion import PromotionResult
from tauro_workbench.stores.routing import Route, RouteFacts
from tauro_workbench.workbench import Preview, TrainingSet

GOLDEN = Path(__file__).with_name("golden")
UPDATE_ENV = "TAURO_UPDATE_GOLDEN"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``tests/golden/<name>``; rewrite it when TAURO_UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no golden file {path}; run with {UPDATE_ENV}=1 to create it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden file ({UPDATE_ENV}=1 updates it)"
    )


def users_schema() -> FeatureGroupSchema:
    return FeatureGroupSchema(
        name="user_features",
        entity_keys=["user_id"],
        timestamp_key="updated_at",
        description="Profile attributes of a user <b>not bold</b>.",
        features=[
            FeatureSchema("age", DataType.INT, FeatureType.NUMERICAL, metadata={"min": 0, "max": 150}),
            FeatureSchema("country", DataType.STRING, FeatureType.CATEGORICAL, description="ISO code"),
            FeatureSchema(
                "plan", DataType.STRING, FeatureType.CATEGORICAL, metadata={"allowed_values": ["free", "pro"]}
            ),
        ],
        tags={"team": "growth"},
        ttl=timedelta(days=30),
        owner="ana@example.com",
    )


def purchases_schema() -> FeatureGroupSchema:
    return FeatureGroupSchema(
        name="user_purchases_daily",
        entity_keys=["user_id"],
        timestamp_key="day_end",
        features=[
            FeatureSchema("purchase_count", DataType.BIGINT, FeatureType.NUMERICAL),
            FeatureSchema("purchase_amount", DataType.DOUBLE, FeatureType.NUMERICAL),
        ],
    )


def drift_report() -> DriftReport:
    amount = FeatureDrift(
        "amount",
        "numeric",
        0.4123,
        0.2811,
        0.0,
        "drift",
        ("psi 0.412 >= 0.25", "ks 0.281 >= 0.2"),
        ("<= 10", "(10, 20]", "> 20"),
        (0.3, 0.4, 0.3),
        (0.1, 0.3, 0.6),
    )
    plan = FeatureDrift("plan", "categorical", 0.1312, None, 0.01, "warning", ("psi 0.131 >= 0.1",))
    age = FeatureDrift("age", "numeric", 0.0021, 0.0105, 0.0, "ok")
    return DriftReport(
        "user_features",
        1,
        "drift",
        "previous write #4",
        (amount, plan, age),
        rows=2_000,
        reference_rows=1_950,
        reference_write_ids=(4,),
        write_id=5,
        created_at=T0,
    )


def write_record() -> WriteRecord:
    return WriteRecord(
        5,
        "user_features",
        1,
        "append",
        2_000,
        6,
        T0,
        {
            "format": "delta",
            "seconds": 0.0412,
            "drift": drift_report().to_dict(),
            "profile": {str(i): i for i in range(40)},
        },
    )


def preview() -> Preview:
    frame = pl.DataFrame({"user_id": [1, 2], "day_end": [T0, T0], "purchase_count": [3, None]})
    return Preview(
        "user_purchases_daily",
        frame,
        "SELECT user_id, count(*) AS purchase_count\nFROM silver.purchases",
        "virtual",
        0.0123,
        "duckdb",
    )


def route() -> Route:
    facts = RouteFacts(group="user_purchases_daily", estimated_rows=36_360, now=T0, virtual_available=True)
    return Route(
        "virtual",
        ("~36360 rows <= hybrid_threshold_rows=100000: computing on demand is cheap",),
        facts,
        "default",
    )


def promotion() -> PromotionResult:
    return PromotionResult(
        "user_purchases_daily",
        1,
        "materialized",
        31_439,
        1,
        0.668,
        "no_reference",
        True,
        "Materialized 31439 rows of 'user_purchases_daily' v1 (table version 1, append)",
    )


def training_set() -> TrainingSet:
    frame = pl.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [T0] * 3, "age": [31, None, 45]})
    return TrainingSet(frame, ("user_features.age",), {"user_features": 6}, {"user_features": 2 / 3}, 0.031)


def health() -> HealthReport:
    return HealthReport(
        {"registry": True, "online": False}, {"online": "the redis online store does not answer <x>"}
    )


def registry() -> FeatureStoreMetadata:
    """An in-memory registry: a materialized group with writes and an online copy, a virtual group
    defined in SQL over a source and promoted once, a feature view and a lineage edge."""
    metadata = FeatureStoreMetadata()
    users, purchases = users_schema(), purchases_schema()
    metadata.register_feature_group(users)
    metadata.register_feature_group(purchases)
    metadata.put_document("source", "silver.users", {"format": "parquet", "location": "users.parquet"})
    metadata.put_document(
        "source", "silver.purchases", {"format": "parquet", "location": "purchases.parquet"}
    )
    sql = "SELECT user_id, day_end, count(*) AS purchase_count, sum(amount) AS purchase_amount FROM silver.purchases GROUP BY ALL"
    metadata.put_document(
        "virtual_definition",
        purchases.name,
        {
            "group": purchases.name,
            "version": 1,
            "dialect": "duckdb",
            "queries": {"*": sql},
            "sources": ["silver.purchases"],
        },
    )
    for feature in purchases.feature_names:
        metadata.set_lineage(f"{purchases.name}.{feature}", ["silver.purchases"])
    for feature in users.feature_names:
        metadata.set_lineage(f"{users.name}.{feature}", ["silver.users"])
    metadata.record_write(users.name, 1, mode="overwrite", rows=2_000, table_version=0, written_at=T0)
    metadata.record_write(
        users.name,
        1,
        mode="append",
        rows=50,
        table_version=1,
        written_at=T0 + timedelta(days=1),
        details={"drift": drift_report().to_dict()},
    )
    metadata.record_write(
        purchases.name,
        1,
        mode="append",
        rows=31_439,
        table_version=0,
        written_at=T0 + timedelta(days=2),
        details={"promotion": {"definition": "abc"}},
    )
    metadata.put_document("online_sync", users.name, {"group": users.name, "version": 1, "status": "ok"})
    metadata.put_document(
        "feature_view",
        "churn",
        {
            "versions": [
                {"version": 1, "features": ["user_features.age", "user_purchases_daily.purchase_count"]}
            ]
        },
    )
    return metadata
