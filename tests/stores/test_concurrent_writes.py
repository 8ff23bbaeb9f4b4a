"""Concurrent writers in real processes: new tables, merges racing appends, conflicts named."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import pytest
from deltalake import DeltaTable

from tauro_workbench.exceptions import CommitConflictError
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.offline_table import SEQ_COLUMN, DeltaOfflineTable
from tests.stores.conftest import StoreFactory, users_frame, users_schema

_WORKER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timezone
    from pathlib import Path
    import polars as pl
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

    root, fmt, mode, worker, count, size = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
    store = MaterializedFeatureStore(storage_path=root, storage_format=fmt, config={"drift": {"enabled": False}})
    print("ready", flush=True)
    while not Path(root, "go").exists():  # start together
        time.sleep(0.005)
    for batch in range(count):
        ids = [worker * 100_000 + (0 if mode == "merge" else batch * size) + i for i in range(size)]
        store.write_features("users", pl.DataFrame({
            "user_id": ids, "ts": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * size,
            "age": pl.Series([batch] * size, dtype=pl.Int32), "city": ["x"] * size,
        }), mode=mode)
    """
)


def race(root: Path, storage_format: str, jobs: list[tuple[str, int, int, int]]) -> None:
    """Run one process per (mode, worker, writes, rows per write), released at the same instant."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(root), storage_format, mode, *map(str, (w, n, size))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for mode, w, n, size in jobs
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    (root / "go").touch()
    results = [(proc.wait(timeout=180), proc.stderr.read().decode()[-2000:]) for proc in procs]  # type: ignore[union-attr]
    assert [code for code, _ in results] == [0] * len(procs), [err for _, err in results]


def assert_one_record_per_data_version(store: MaterializedFeatureStore) -> None:
    history = DeltaTable(store.table_uri("users")).history()
    data_versions = sorted(int(c["version"]) for c in history if "tauro.mode" in c)
    assert [int(c["version"]) for c in history if "tauro.mode" not in c] == [0]  # only the creation
    writes = store.list_writes("users")
    assert sorted(w.table_version for w in writes) == data_versions  # type: ignore[type-var]
    assert len({w.write_id for w in writes}) == len(writes)


@pytest.mark.parametrize("storage_format", ["delta", "parquet"])
def test_concurrent_first_writes_create_the_table_once(
    make_store: StoreFactory, tmp_path: Path, storage_format: str
) -> None:
    store = make_store(storage_format)
    store.register_features(users_schema())  # no table yet: every worker races to create it
    race(tmp_path / "repo", storage_format, [("append", w, 3, 10) for w in range(4)])
    stored = store.scan_group("users", columns=["user_id", SEQ_COLUMN]).collect()
    assert stored.height == 4 * 3 * 10
    assert stored.get_column("user_id").n_unique() == stored.height
    assert stored.get_column(SEQ_COLUMN).n_unique() == stored.height
    assert len(store.list_writes("users")) == 12
    if storage_format == "delta":
        assert_one_record_per_data_version(store)
    assert not list((tmp_path / "repo" / "offline" / "users").glob("v1.*"))  # no staging left behind


def test_a_merge_racing_four_appenders_commits_with_the_default_retries(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    store = make_store("delta")
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [1]))
    race(
        tmp_path / "repo",
        "delta",
        [("merge", 9, 4, 3000), *[("append", w, 8, 20) for w in range(4)]],
    )
    stored = store.scan_group("users").collect()
    assert stored.height == 1 + 3000 + 4 * 8 * 20
    merged = stored.filter(stored["user_id"] >= 900_000)
    assert merged.height == 3000 and set(merged.get_column("age").to_list()) == {3}  # the last merge won
    assert_one_record_per_data_version(store)
    assert [w.mode for w in store.list_writes("users")].count("merge") == 4


def test_a_conflict_that_outlasts_the_retries_is_named(delta_store: MaterializedFeatureStore) -> None:
    delta_store.write_features("users", users_frame([1], [0], [1]))
    delta_store.write_features("users", users_frame([2], [0], [2]))
    waits: list[float] = []
    table = delta_store._table(delta_store.metadata.get_feature_group("users"))
    table.retry = RetryPolicy(max_retries=2, backoff_ms=10, multiplier=3, sleep=waits.append)
    stale = DeltaTable(table.uri, version=1)  # as if another engine committed version 2 unseen
    before = DeltaTable(table.uri).version()
    with (
        mock.patch.object(DeltaOfflineTable, "_open", return_value=stale),
        pytest.raises(CommitConflictError, match="lost the commit race 3 time") as caught,
    ):
        delta_store.write_features("users", users_frame([3], [0], [3]), mode="merge")
    assert caught.value.attempts == 3 and caught.value.uri == table.uri
    assert waits == [0.01, 0.03]  # the configured backoff
    assert DeltaTable(table.uri).version() == before
    assert len(delta_store.list_writes("users")) == 2


def test_a_writer_waits_for_the_commit_lock_then_commits(
    delta_store: MaterializedFeatureStore, tmp_path: Path
) -> None:
    delta_store.write_features("users", users_frame([1], [0], [1]))
    uri = delta_store.table_uri("users")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from tauro_workbench.stores.commit_lock import commit_lock\n"
            "with commit_lock(Path(sys.argv[1]), timeout_seconds=5):\n"
            "    print('held', flush=True); time.sleep(1.0)",
            uri,
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    started = time.monotonic()
    record = delta_store.write_features("users", users_frame([2], [0], [2]))
    assert time.monotonic() - started > 0.3  # it waited for the other process
    assert holder.wait(timeout=30) == 0 and record.table_version == 2
