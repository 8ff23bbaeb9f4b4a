"""Drift monitoring through the materialized store, on the sample data (shifted June 2026)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
from tauro_workbench.exceptions import DriftDetectedError
from tauro_workbench.monitoring import DriftDetected, DriftReport, GroupProfile
from tauro_workbench.stores.materialized import MaterializedFeatureStore

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "silver" / "transactions.parquet"
SCHEMA = FeatureGroupSchema(
    name="card_transactions",
    entity_keys=["transaction_id"],
    timestamp_key="transaction_ts",
    features=[
        FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL),
        FeatureSchema("merchant_category", DataType.STRING, FeatureType.CATEGORICAL),
        FeatureSchema("status", DataType.STRING, FeatureType.CATEGORICAL),
        FeatureSchema("is_fraud", DataType.BOOLEAN, FeatureType.CATEGORICAL),
    ],
)


@pytest.fixture(scope="module")
def months() -> dict[int, pl.DataFrame]:
    frame = pl.read_parquet(SAMPLE).unique("transaction_id", keep="first", maintain_order=True)
    return {
        m: frame.filter(pl.col("transaction_ts").dt.month() == m).select(SCHEMA.columns) for m in range(1, 7)
    }


def test_the_shifted_month_of_the_sample_data_drifts_and_earlier_months_do_not(
    tmp_path: Path, months: dict[int, pl.DataFrame]
) -> None:
    store = MaterializedFeatureStore(storage_path=tmp_path)
    store.register_features(SCHEMA)
    records = [store.write_features(SCHEMA.name, months[month]) for month in range(1, 7)]
    assert records[-1].details["drift"]["verdict"] == "drift"  # the returned record carries its report
    reports = store.monitor.reports(SCHEMA.name)
    assert [r.verdict for r in reports] == ["no_reference", "ok", "ok", "ok", "ok", "drift"]
    june = reports[-1]
    assert "amount" in june.drifted and june.feature("amount").psi > 0.25  # type: ignore[operator]
    events = store.events.history(kind="drift_detected")
    assert len(events) == 1 and isinstance(events[0], DriftDetected) and events[0].write_id == june.write_id


def test_block_leaves_the_delta_table_unchanged_and_warn_stores_the_report(
    tmp_path: Path, months: dict[int, pl.DataFrame]
) -> None:
    store = MaterializedFeatureStore(storage_path=tmp_path, config={"drift": {"on_drift": "block"}})
    store.register_features(SCHEMA)
    first = store.write_features(SCHEMA.name, months[4])
    second = store.write_features(SCHEMA.name, months[5])  # no drift: the gate lets it through
    uri = store.table_uri(SCHEMA.name)
    version = DeltaTable(uri).version()
    with pytest.raises(DriftDetectedError) as info:
        store.write_features(SCHEMA.name, months[6])
    assert isinstance(info.value.report, DriftReport) and info.value.report.reference_write_ids == (
        second.id,
    )
    assert DeltaTable(uri).version() == version
    assert [w.id for w in store.metadata.list_writes(SCHEMA.name)] == [first.id, second.id]
    blocked = store.events.history(kind="drift_detected")
    assert len(blocked) == 1 and blocked[0].blocked  # type: ignore[attr-defined]

    record = store.write_features(SCHEMA.name, months[6], on_drift="warn")
    assert DeltaTable(uri).version() == version + 1
    stored = store.metadata.list_writes(SCHEMA.name)[-1]
    assert stored.id == record.id
    report = DriftReport.from_dict(stored.details["drift"])
    assert report.verdict == "drift" and report.write_id == record.id
    assert GroupProfile.from_dict(stored.details["profile"]).rows == months[6].height
    assert stored.details["format"] == "delta"  # the store's own details are kept


def test_disabled_drift_stores_no_profile(tmp_path: Path, months: dict[int, pl.DataFrame]) -> None:
    store = MaterializedFeatureStore(storage_path=tmp_path, config={"drift": {"enabled": False}})
    store.register_features(SCHEMA)
    store.write_features(SCHEMA.name, months[1])
    store.write_features(SCHEMA.name, months[6])
    assert all("profile" not in w.details for w in store.metadata.list_writes(SCHEMA.name))
    assert store.events.history(kind="drift_detected") == []
