"""Opened Delta snapshots are reused across reads, and never serve a version older than the log's."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl

from tauro_workbench.retry import RetryPolicy
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.offline_table import SEQ_COLUMN, DeltaOfflineTable
from tests.stores.conftest import StoreFactory, day, users_frame, users_schema

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta, timezone
    import polars as pl
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

    store = MaterializedFeatureStore(storage_path=sys.argv[1], config={"drift": {"enabled": False}})
    when = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=float(sys.argv[3]))
    store.write_features("users", pl.DataFrame({
        "user_id": [1], "ts": [when], "age": pl.Series([int(sys.argv[2])], dtype=pl.Int32),
        "city": ["elsewhere"],
    }))
    """
)


def _ages(store: MaterializedFeatureStore, at: float = 10, **options: object) -> list[int | None]:
    entity = pl.DataFrame({"user_id": [1], "ts": [day(at)]})
    return store.get_historical_features(entity, ["users.age"], **options).collect()["age"].to_list()  # type: ignore[arg-type]


def _table(root: Path) -> DeltaOfflineTable:
    return DeltaOfflineTable(root, retry=RetryPolicy(max_retries=0))


def test_a_read_after_a_write_in_the_same_store_sees_the_write(make_store: StoreFactory) -> None:
    store = make_store("delta")
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [1], [30]))
    assert _ages(store) == [30]
    assert _ages(store) == [30]  # served from the opened snapshot
    store.write_features("users", users_frame([1], [2], [31]))
    assert _ages(store) == [31]
    assert store.last_read_info is not None and store.last_read_info.table_versions == {"users": 2}
    assert _ages(store, as_of=1) == [30]  # time travel still reads the older version


def test_a_read_after_a_write_by_another_process_sees_the_write(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    store = make_store("delta")
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [1], [30]))
    assert _ages(store) == [30]
    for age, when in ((41, 2), (42, 3)):
        subprocess.run(
            [sys.executable, "-c", WRITER, str(tmp_path / "repo"), str(age), str(when)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert _ages(store) == [age]
    assert store.last_read_info is not None and store.last_read_info.table_versions == {"users": 3}


def test_a_lazy_result_keeps_the_version_it_was_planned_at(make_store: StoreFactory) -> None:
    store = make_store("delta")
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [1], [30]))
    planned = store.get_historical_features(pl.DataFrame({"user_id": [1], "ts": [day(10)]}), ["users.age"])
    store.write_features("users", users_frame([1], [2], [31]))
    assert planned.collect()["age"].to_list() == [30]
    assert planned.collect()["age"].to_list() == [30]
    assert _ages(store) == [31]


def test_reads_without_a_commit_reuse_one_snapshot_and_a_commit_replaces_it(tmp_path: Path) -> None:
    table = _table(tmp_path / "t")
    table.commit("append", users_frame([1, 2], [1, 1], [30, 40]))
    first = table._snapshot(None)
    assert table._snapshot(None) is first
    assert table.row_count(None) == 2
    table.commit("append", users_frame([3], [1], [50]))
    assert table._snapshot(None) is not first
    assert (table.version(), table.row_count(None), table.row_count(1)) == (2, 3, 2)
    scanned = table.scan(None)
    assert scanned is not None and scanned.collect().height == 3


def test_a_table_deleted_and_created_again_is_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "t"
    reader, unaware = _table(path), _table(path)
    _table(path).commit("append", users_frame([1], [1], [30]))
    for table in (reader, unaware):
        before = table.scan(1)
        assert before is not None and before.collect()["age"].to_list() == [30]
        assert table.resolve_version(None) == 1
    shutil.rmtree(path)
    assert reader.scan(None) is None and reader.version() is None
    _table(path).commit("append", users_frame([1], [1], [99]))  # version 1 again, other rows
    # ``unaware`` never saw the table gone: the new log entries differ from those it opened
    for table in (reader, unaware):
        for version in (None, 1):
            again = table.scan(version)
            assert again is not None
            assert again.collect().select("age", SEQ_COLUMN).to_dicts() == [{"age": 99, SEQ_COLUMN: 1 << 32}]
