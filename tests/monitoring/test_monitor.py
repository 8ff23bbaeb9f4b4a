"""WriteMonitor: references, the gate, stored profiles and reports, pinned baselines."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from tauro_workbench import FeatureGroupSchema
from tauro_workbench.config import DriftConfig
from tauro_workbench.exceptions import ConfigurationError, DriftDetectedError, FeatureGroupNotFoundError
from tauro_workbench.monitoring import DriftDetected, DriftReport, EventBus, GroupProfile, WriteMonitor
from tauro_workbench.monitoring.monitor import BASELINE_KIND, drift_history, list_reports
from tauro_workbench.monitoring.profile import profile_frame
from tauro_workbench.registry import FeatureStoreMetadata, WriteRecord
from tests.monitoring.conftest import transactions


def write(
    monitor: WriteMonitor, schema: FeatureGroupSchema, frame: pl.DataFrame, **kwargs: object
) -> tuple[WriteRecord, DriftReport | None]:
    """Do what the materialized store does around a write (without the Delta table)."""
    report = monitor.before_write(schema, frame, **kwargs)  # type: ignore[arg-type]
    version = len(monitor.metadata.list_writes(schema.name))
    record = monitor.metadata.record_write(
        schema.name, schema.version, mode="append", rows=frame.height, table_version=version
    )
    return record, monitor.after_write(schema, record, report)


def drift_events(bus: EventBus) -> list[DriftDetected]:
    return [e for e in bus.history(kind="drift_detected") if isinstance(e, DriftDetected)]


def test_first_write_has_no_reference_and_stores_its_profile(
    monitor: WriteMonitor, schema: FeatureGroupSchema
) -> None:
    record, report = write(monitor, schema, transactions(1_000, seed=1))
    assert report is not None and report.verdict == "no_reference" and report.write_id == record.id
    stored = monitor.metadata.list_writes(schema.name)[-1].details
    assert GroupProfile.from_dict(stored["profile"]) == report.profile
    assert DriftReport.from_dict(stored["drift"]).verdict == "no_reference"


def test_identical_and_similar_writes_are_ok_and_publish_nothing(
    monitor: WriteMonitor, schema: FeatureGroupSchema, bus: EventBus
) -> None:
    frame = transactions(3_000, seed=1)
    first, _ = write(monitor, schema, frame)
    _, same = write(monitor, schema, frame)
    assert same is not None and same.verdict == "ok" and same.reference_write_ids == (first.id,)
    assert same.reference.startswith(f"previous write #{first.id}")
    _, similar = write(monitor, schema, transactions(3_000, seed=2))
    assert similar is not None and similar.verdict == "ok"
    assert drift_events(bus) == []


def test_warn_stores_the_report_logs_and_publishes_after_the_write(
    monitor: WriteMonitor, schema: FeatureGroupSchema, bus: EventBus, logs: list[str]
) -> None:
    write(monitor, schema, transactions(3_000, seed=1))
    received: list[object] = []
    bus.subscribe(received.append, kinds=["drift_detected"])
    record, report = write(monitor, schema, transactions(3_000, seed=2, shift=0.5))
    assert report is not None and report.verdict == "drift" and report.on_drift == "warn"
    (event,) = drift_events(bus)
    assert received == [event]
    assert (event.write_id, event.severity, event.blocked) == (record.id, "drift", False)
    assert set(event.features) == set(report.drifted) and event.max_psi == pytest.approx(report.max_psi)
    assert any(line.startswith("WARNING") and f"write #{record.id}" in line for line in logs)
    assert DriftReport.from_dict(monitor.metadata.list_writes(schema.name)[-1].details["drift"]) == report


def test_block_raises_before_the_write_and_publishes_a_blocked_event(
    metadata: FeatureStoreMetadata, schema: FeatureGroupSchema, bus: EventBus
) -> None:
    monitor = WriteMonitor(metadata, DriftConfig(on_drift="block"), bus)
    write(monitor, schema, transactions(3_000, seed=1))
    _, ok = write(monitor, schema, transactions(3_000, seed=2))  # no drift: the gate lets it through
    assert ok is not None and ok.verdict == "ok"
    with pytest.raises(DriftDetectedError, match="amount") as info:
        monitor.before_write(schema, transactions(3_000, seed=3, shift=0.5))
    assert isinstance(info.value.report, DriftReport) and info.value.report.verdict == "drift"
    assert info.value.report.write_id is None
    (event,) = drift_events(bus)
    assert event.blocked and event.write_id is None
    assert len(metadata.list_writes(schema.name)) == 2
    # the argument wins over the config
    _, warned = write(monitor, schema, transactions(3_000, seed=3, shift=0.5), on_drift="warn")
    assert warned is not None and warned.verdict == "drift" and len(drift_events(bus)) == 2


def test_ignore_stores_the_report_without_events_and_bad_gates_are_rejected(
    monitor: WriteMonitor, schema: FeatureGroupSchema, bus: EventBus
) -> None:
    write(monitor, schema, transactions(2_000, seed=1))
    _, report = write(monitor, schema, transactions(2_000, seed=2, shift=0.5), on_drift="ignore")
    assert report is not None and report.verdict == "drift" and drift_events(bus) == []
    assert list_reports(monitor.metadata, schema.name)[-1].verdict == "drift"
    with pytest.raises(ConfigurationError, match="on_drift"):
        monitor.before_write(schema, transactions(10, seed=1), on_drift="explode")


def test_disabled_monitoring_profiles_nothing(
    metadata: FeatureStoreMetadata, schema: FeatureGroupSchema, bus: EventBus
) -> None:
    monitor = WriteMonitor(metadata, DriftConfig(enabled=False), bus)
    record, report = write(monitor, schema, transactions(100, seed=1))
    assert report is None and metadata.list_writes(schema.name)[-1].details == {}
    assert record.id == 1


def test_reference_is_the_previous_profiled_write_of_the_same_version(
    monitor: WriteMonitor, schema: FeatureGroupSchema, metadata: FeatureStoreMetadata
) -> None:
    first, _ = write(monitor, schema, transactions(500, seed=1))
    metadata.record_write(schema.name, schema.version, mode="append", rows=5)  # written with monitoring off
    metadata.record_write(schema.name, 2, mode="append", rows=5)  # another version
    reference = monitor.reference_for(schema)
    assert reference is not None and reference.write_ids == (first.id,)


def test_pinned_write_is_the_reference_until_unpinned(
    monitor: WriteMonitor, schema: FeatureGroupSchema, metadata: FeatureStoreMetadata
) -> None:
    base, _ = write(monitor, schema, transactions(2_000, seed=1))
    write(monitor, schema, transactions(2_000, seed=2, shift=0.5))
    pinned = monitor.pin_baseline(schema.name, write_id=base.id)
    assert pinned.write_ids == (base.id,) and metadata.find_document(BASELINE_KIND, schema.name) is not None
    _, report = write(monitor, schema, transactions(2_000, seed=3, shift=0.5))
    assert report is not None and report.verdict == "drift" and report.reference.startswith("pinned write")
    by_version = monitor.pin_baseline(schema.name, table_version=base.table_version)
    assert by_version.write_ids == (base.id,)
    assert monitor.unpin_baseline(schema.name) and not monitor.unpin_baseline(schema.name)
    _, after = write(monitor, schema, transactions(2_000, seed=4, shift=0.5))
    assert after is not None and after.verdict == "ok" and after.reference.startswith("previous write")


def test_pinned_time_window_merges_the_writes_it_overlaps(
    monitor: WriteMonitor, schema: FeatureGroupSchema
) -> None:
    january = [transactions(1_000, seed=s, start=datetime(2026, 1, 1, tzinfo=UTC), days=14) for s in (1, 2)]
    ids = [write(monitor, schema, frame)[0].id for frame in january]
    march, _ = write(
        monitor, schema, transactions(1_000, seed=3, shift=0.5, start=datetime(2026, 3, 1, tzinfo=UTC))
    )
    reference = monitor.pin_baseline(schema.name, start=datetime(2026, 1, 1), end=datetime(2026, 2, 1))
    assert reference.write_ids == tuple(ids) and reference.profile.rows == 2_000
    assert "2 writes" in reference.label
    _, report = write(monitor, schema, transactions(1_000, seed=4))
    assert report is not None and report.verdict == "ok" and report.reference_write_ids == tuple(ids)
    with pytest.raises(ConfigurationError, match="overlaps"):
        monitor.pin_baseline(schema.name, start=datetime(2027, 1, 1))
    assert march.id not in reference.write_ids


def test_pinned_profile_and_pinning_errors(monitor: WriteMonitor, schema: FeatureGroupSchema) -> None:
    profile = profile_frame(schema, transactions(1_000, seed=1))[0]
    assert monitor.pin_baseline(schema.name, profile=profile).label == "pinned profile"
    _, report = write(monitor, schema, transactions(1_000, seed=2))
    assert report is not None and report.verdict == "ok" and report.reference == "pinned profile"
    with pytest.raises(ConfigurationError, match="exactly one"):
        monitor.pin_baseline(schema.name, write_id=1, start=datetime(2026, 1, 1))
    with pytest.raises(ConfigurationError, match="exactly one"):
        monitor.pin_baseline(schema.name)
    with pytest.raises(ConfigurationError, match="write id 999"):
        monitor.pin_baseline(schema.name, write_id=999)
    with pytest.raises(FeatureGroupNotFoundError):
        monitor.pin_baseline("unknown_group", write_id=1)
    plain = monitor.metadata.record_write(schema.name, schema.version, mode="append", rows=1)
    with pytest.raises(ConfigurationError, match="no stored profile"):
        monitor.pin_baseline(schema.name, write_id=plain.id)


def test_drift_history_has_one_row_per_write_and_feature(
    monitor: WriteMonitor, schema: FeatureGroupSchema
) -> None:
    ids = [write(monitor, schema, transactions(1_000, seed=s, shift=0.5 * (s == 3)))[0].id for s in (1, 2, 3)]
    history = drift_history(monitor.metadata, schema.name)
    assert history["write_id"].unique().sort().to_list() == ids[1:]  # the first write has no reference
    assert (
        history.filter(pl.col("write_id") == ids[2], pl.col("feature") == "amount")["verdict"].item()
        == "drift"
    )
    assert monitor.drift_history(schema.name).equals(history)
    assert [r.write_id for r in monitor.reports(schema.name)] == ids


def test_shifted_month_drifts_and_earlier_months_do_not(
    monitor: WriteMonitor, schema: FeatureGroupSchema
) -> None:
    months = [datetime(2026, m, 1, tzinfo=UTC) for m in range(1, 5)]
    verdicts = []
    for i, start in enumerate(months):
        frame = transactions(
            5_000, seed=10 + i, start=start, shift=0.5 if i == len(months) - 1 else 0.0, offset=i * 5_000
        )
        verdicts.append(write(monitor, schema, frame)[1].verdict)  # type: ignore[union-attr]
    assert verdicts == ["no_reference", "ok", "ok", "drift"]
