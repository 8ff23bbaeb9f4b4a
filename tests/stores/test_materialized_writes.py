"""Writes of the materialized store on real Delta and Parquet tables."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tauro_workbench.exceptions import (
    ConfigurationError,
    DriftDetectedError,
    FeatureGroupNotFoundError,
    FeatureMaterializationError,
    PointInTimeError,
    SchemaValidationError,
)
from tauro_workbench.monitoring.events import FeaturesWritten
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.offline_table import SEQ_COLUMN
from tests.stores.conftest import StoreFactory, day, users_frame, users_schema


def rows(store: MaterializedFeatureStore) -> pl.DataFrame:
    return store.scan_group("users").collect().sort("user_id", "ts")


def test_append_accepts_polars_lazy_pyarrow_and_pandas(store: MaterializedFeatureStore) -> None:
    frame = users_frame([1, 2], [0, 1], [30, 40])
    store.write_features("users", frame)
    store.write_features("users", frame.lazy().with_columns(pl.col("user_id") + 10))
    store.write_features("users", frame.with_columns(pl.col("user_id") + 20).to_arrow())
    store.write_features("users", frame.with_columns(pl.col("user_id") + 30).to_pandas())
    got = rows(store)
    assert got.get_column("user_id").to_list() == [1, 2, 11, 12, 21, 22, 31, 32]
    assert got.schema["ts"] == pl.Datetime("us", "UTC")
    assert [w.table_version for w in store.metadata.list_writes("users")] == store.list_table_versions(
        "users"
    )[-4:]


def test_failed_validation_writes_nothing(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1], [0], [30]))
    before = store.list_table_versions("users")
    bad = users_frame([1, None], [0, 1], [30, 40])  # type: ignore[list-item]
    with pytest.raises(SchemaValidationError, match="user_id"):
        store.write_features("users", bad)
    with pytest.raises(SchemaValidationError, match="missing columns"):
        store.write_features("users", bad.drop("age"))
    assert store.list_table_versions("users") == before
    assert len(store.metadata.list_writes("users")) == 1
    assert rows(store).height == 1


def test_backend_failure_is_wrapped_and_leaves_the_table_unchanged(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1], [0], [30]))
    before = store.list_table_versions("users")
    target = (
        "deltalake.write_deltalake" if store.storage_format == "delta" else "polars.DataFrame.write_parquet"
    )
    with (
        mock.patch(target, side_effect=OSError("disk full")),
        pytest.raises(FeatureMaterializationError, match="disk full") as info,
    ):
        store.write_features("users", users_frame([2], [0], [40]))
    assert isinstance(info.value.__cause__, OSError)
    assert rows(store).get_column("user_id").to_list() == [1]
    if store.storage_format == "delta":
        assert store.list_table_versions("users") == before
    assert len(store.metadata.list_writes("users")) == 1


def test_drift_gate_blocks_before_anything_is_written(store: MaterializedFeatureStore) -> None:
    with (
        mock.patch.object(store.monitor, "before_write", side_effect=DriftDetectedError("drifted")),
        pytest.raises(DriftDetectedError),
    ):
        store.write_features("users", users_frame([1], [0], [30]))
    assert store.list_table_versions("users") == []
    assert store.metadata.list_writes("users") == []


def test_write_is_recorded_profiled_synced_and_published(make_store: StoreFactory) -> None:
    store = make_store("delta", drift={"enabled": True}, enable_online_store=True, sync_to_online=True)
    store.register_features(users_schema())
    seen: list[FeaturesWritten] = []
    store.events.subscribe(seen.append, kinds=["features_written"])  # type: ignore[arg-type]
    record = store.write_features("users", users_frame([1, 2], [0, 1], [30, 40]))
    assert (record.group, record.mode, record.rows, record.table_version) == ("users", "append", 2, 1)
    assert record.details["format"] == "delta" and record.details["drift"]["verdict"] == "no_reference"
    stored = store.metadata.list_writes("users")[-1]
    assert stored.id == record.id and stored.details["online"]["status"] == "ok"
    assert store.get_online_features(["age"], {"user_id": 2}) == {"age": 40}
    assert [(e.rows, e.table_version, e.write_id) for e in seen] == [(2, 1, record.id)]


def test_overwrite_replaces_everything_atomically(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 2], [0, 1], [30, 40]))
    record = store.write_features("users", users_frame([3], [2], [50]), mode="overwrite")
    assert record.mode == "overwrite"
    assert rows(store).get_column("user_id").to_list() == [3]
    store.write_features("users", users_frame([], [], []), mode="overwrite")
    assert rows(store).height == 0


def test_merge_upserts_on_entity_key_and_event_time(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 1, 2], [0, 1, 0], [30, 31, 40]))
    # (1, day 1) updated; (2, day 5) inserted; a duplicate in the input: the last one wins
    store.write_features("users", users_frame([1, 2, 2], [1, 5, 5], [99, 41, 42]), mode="merge")
    got = rows(store).select("user_id", "age").rows()
    assert got == [(1, 30), (1, 99), (2, 40), (2, 42)]


def test_merge_into_a_missing_table_creates_it(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1], [0], [30]), mode="merge")
    assert rows(store).height == 1


def test_backfill_replaces_exactly_the_window_and_is_idempotent(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 1, 1, 1], [0, 1, 2, 3], [10, 11, 12, 13]))
    source = users_frame([1, 1, 1, 2], [0.5, 1, 2.5, 3], [50, 51, 52, 53])
    store.backfill("users", source, start=day(1), end=day(3))
    first = rows(store)
    # day 1 and 2 replaced by the source rows inside [day 1, day 3); day 0 and 3 untouched
    assert first.select("user_id", "age").rows() == [(1, 10), (1, 51), (1, 52), (1, 13)]
    record = store.backfill("users", source, start=day(1), end=day(3))
    assert record.mode == "backfill" and record.details["window"][0].startswith("2024-01-02")
    assert_frame_equal(rows(store), first)


def test_backfill_from_a_chunked_source(store: MaterializedFeatureStore) -> None:
    calls: list[tuple[object, object]] = []

    def source(start, end):  # type: ignore[no-untyped-def]
        calls.append((start, end))
        return users_frame([7, 8], [(start - day(0)).days, 100], [1, 2])

    store.write_features("users", users_frame([1], [4], [10]))
    store.backfill("users", source, start=day(0), end=day(5), chunk_by="day")
    assert len(calls) == 5
    got = rows(store)
    assert got.get_column("user_id").to_list() == [7] * 5  # day 4 replaced; day-100 rows dropped
    assert len(store.metadata.list_writes("users")) == 2


def test_backfill_flag_replaces_the_window_covered_by_the_data(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 1, 1], [0, 1, 2], [10, 11, 12]))
    store.write_features("users", users_frame([2], [1], [20]), backfill=True)
    assert rows(store).select("user_id", "age").rows() == [(1, 10), (1, 12), (2, 20)]
    with pytest.raises(ConfigurationError, match="backfill"):
        store.write_features("users", users_frame([2], [1], [20]), mode="merge", backfill=True)


def test_bad_inputs_raise_typed_errors(store: MaterializedFeatureStore) -> None:
    with pytest.raises(ConfigurationError, match="upsert"):
        store.write_features("users", users_frame([1], [0], [1]), mode="upsert")
    with pytest.raises(FeatureGroupNotFoundError):
        store.write_features("nope", users_frame([1], [0], [1]))
    with pytest.raises(SchemaValidationError, match="unsupported data"):
        store.write_features("users", [1, 2, 3])
    with pytest.raises(PointInTimeError, match="empty"):
        store.backfill("users", users_frame([1], [0], [1]), start=day(2), end=day(1))


def test_partition_by_date_adds_a_hidden_partition(make_store: StoreFactory) -> None:
    from deltalake import DeltaTable

    store = make_store("delta", materialized={"partition_by_date": True})
    store.register_features(users_schema())
    store.write_features("users", users_frame([1, 2], [0, 1], [30, 40]))
    assert DeltaTable(store.table_uri("users")).metadata().partition_columns == ["_tauro_date"]
    assert rows(store).columns == ["user_id", "ts", "age", "city"]
    window = store.scan_group("users", start=day(1), end=day(2)).collect()
    assert window.get_column("user_id").to_list() == [2]


def test_sequence_grows_with_every_write_and_row(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 2], [0, 0], [1, 2]))
    store.write_features("users", users_frame([3], [0], [3]))
    seq = store.scan_group("users", columns=["user_id", SEQ_COLUMN]).collect().sort(SEQ_COLUMN)
    assert seq.get_column("user_id").to_list() == [1, 2, 3]
    assert [s >> 32 for s in seq.get_column(SEQ_COLUMN).to_list()] == [1, 1, 2]


_WORKER = textwrap.dedent(
    """
    import sys
    import polars as pl
    from datetime import datetime, timezone
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

    root, fmt, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = MaterializedFeatureStore(
        storage_path=root, storage_format=fmt,
        config={"drift": {"enabled": False}, "max_retries": 50, "retry_backoff_ms": 5, "retry_backoff_multiplier": 1},
    )
    for batch in range(8):
        ids = [worker * 1000 + batch * 10 + i for i in range(10)]
        store.write_features("users", pl.DataFrame({
            "user_id": ids, "ts": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * 10,
            "age": pl.Series([batch] * 10, dtype=pl.Int32), "city": ["x"] * 10,
        }))
    """
)


@pytest.mark.parametrize("storage_format", ["delta", "parquet"])
def test_concurrent_appends_from_two_processes_lose_nothing(
    make_store: StoreFactory, tmp_path: Path, storage_format: str
) -> None:
    store = make_store(storage_format)
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [1]))  # the table exists before the race
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "repo"), storage_format, str(w)])
        for w in (1, 2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    stored = store.scan_group("users", columns=["user_id", SEQ_COLUMN]).collect()
    assert stored.height == 1 + 2 * 8 * 10
    assert stored.get_column("user_id").n_unique() == stored.height
    assert stored.get_column(SEQ_COLUMN).n_unique() == stored.height
    writes = store.metadata.list_writes("users")
    versions = [w.table_version for w in writes]
    assert len(writes) == 17 and len(set(versions)) == 17


def test_health_check_reports_an_unwritable_offline_path(make_store: StoreFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = make_store("delta", materialized={"storage_path": str(blocker / "offline")})
    report = store.health_check()
    assert not report and report.checks == {"registry": True, "offline_storage": False}
    assert "not writable" in report.details["offline_storage"]
    assert make_store("delta").health_check()


def test_pandas_input_with_naive_times_is_stored_as_utc(store: MaterializedFeatureStore) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [1],
            "ts": [pd.Timestamp("2024-01-01 12:00")],
            "age": pd.Series([3], dtype="int32"),
            "city": ["x"],
        }
    )
    store.write_features("users", frame)
    assert rows(store).get_column("ts").to_list() == [day(0.5)]
