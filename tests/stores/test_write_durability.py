"""Durable writes: commit identity in the Delta log, idempotent retries, reconciliation, SIGKILLs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tauro_workbench.exceptions import ConfigurationError, MetadataError, WriteNotRecordedError
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.offline_table import SEQ_COLUMN
from tests.stores.conftest import StoreFactory, users_frame, users_schema


def tauro_commits(uri: str) -> dict[int, dict[str, object]]:
    """Table version -> commitInfo of every commit made by a write of this library."""
    return {int(c["version"]): c for c in DeltaTable(uri).history() if "tauro.mode" in c}


def assert_history_matches_log(store: MaterializedFeatureStore) -> None:
    """Every data version has exactly one live write record, agreeing with its commitInfo."""
    writes = store.list_writes("users")
    commits = tauro_commits(store.table_uri("users"))
    assert sorted(w.table_version for w in writes) == sorted(commits)  # type: ignore[type-var]
    for w in writes:
        info = commits[w.table_version]  # type: ignore[index]
        assert (w.write_id, w.mode, str(w.rows)) == (
            info["tauro.write_id"],
            info["tauro.mode"],
            info["tauro.rows"],
        )
    assert len({w.write_id for w in writes}) == len(writes)


def test_commit_carries_the_write_identity(delta_store: MaterializedFeatureStore) -> None:
    record = delta_store.write_features("users", users_frame([1, 2], [0, 1], [30, 40]), write_id="load-1")
    assert record.write_id == "load-1" and record.details["table_id"]
    info = tauro_commits(delta_store.table_uri("users"))[record.table_version]  # type: ignore[index]
    assert info["tauro.write_id"] == "load-1"
    assert (info["tauro.group"], info["tauro.version"], info["tauro.mode"], info["tauro.rows"]) == (
        "users",
        "1",
        "append",
        "2",
    )
    table = DeltaTable(delta_store.table_uri("users"))
    assert table.transaction_version("tauro-write:load-1") == record.table_version
    generated = delta_store.write_features("users", users_frame([3], [2], [50]))
    assert generated.write_id and len(generated.write_id) == 32


@pytest.mark.parametrize("storage_format", ["delta", "parquet"])
def test_retry_with_the_same_write_id_is_a_noop(make_store: StoreFactory, storage_format: str) -> None:
    store = make_store(storage_format)
    store.register_features(users_schema())
    frame = users_frame([1, 2], [0, 1], [30, 40])
    first = store.write_features("users", frame, write_id="batch-7")
    again = store.write_features("users", frame, write_id="batch-7")
    again_merge = store.write_features("users", frame, mode="merge", write_id="batch-7")
    assert again == first and again_merge == first
    assert store.scan_group("users").collect().height == 2
    assert len(store.metadata.list_writes("users")) == 1
    other = store.write_features("users", frame.with_columns(pl.col("user_id") + 10), write_id="batch-8")
    assert other.table_version != first.table_version
    assert store.scan_group("users").collect().height == 4


def test_retry_of_a_backfill_is_a_noop(delta_store: MaterializedFeatureStore) -> None:
    frame = users_frame([1, 2], [0, 1], [30, 40])
    first = delta_store.backfill("users", frame, start="2024-01-01", end="2024-01-03", write_id="bf-1")
    again = delta_store.backfill("users", frame, start="2024-01-01", end="2024-01-03", write_id="bf-1")
    assert again == first and len(delta_store.list_table_versions("users")) == 2


def test_malformed_write_ids_are_refused_before_writing(delta_store: MaterializedFeatureStore) -> None:
    for bad in ["", "has space", "x" * 129, "-leading", "quote'"]:
        with pytest.raises(ConfigurationError, match="write_id"):
            delta_store.write_features("users", users_frame([1], [0], [1]), write_id=bad)
    assert delta_store.metadata.list_writes("users") == []


_LOCK_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_busy_registry_after_commit_says_the_data_is_committed(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    options = {"lock_timeout_seconds": 0.5, "max_retries": 1, "retry_backoff_ms": 10}
    store = make_store("delta", **options)
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [1]))
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(tmp_path / "repo" / "registry.db")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        frame = users_frame(list(range(100, 1100)), [1] * 1000, [7] * 1000)
        with pytest.raises(WriteNotRecordedError, match="IS committed") as caught:
            store.write_features("users", frame, write_id="big-load")
        err = caught.value
        assert isinstance(err, MetadataError)
        assert (err.write_id, err.table_version, err.group) == ("big-load", 2, "users")
        assert "write_id='big-load'" in str(err)
        assert store.scan_group("users").collect().height == 1001  # durable, as the error says
    finally:
        holder.kill()
        holder.wait()
    assert len(store.metadata.list_writes("users")) == 1  # not recorded yet
    retried = store.write_features("users", frame, write_id="big-load")  # the retry the error asks for
    assert retried.table_version == 2 and retried.rows == 1000 and retried.details["reconciled"]
    assert store.scan_group("users").collect().height == 1001
    assert_history_matches_log(store)


_KILL_AFTER_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime, timezone
    import polars as pl
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

    store = MaterializedFeatureStore(storage_path=sys.argv[1], config={"drift": {"enabled": False}})
    # a real SIGKILL at the worst moment: the Delta commit is done, the registry record is not
    store.metadata.record_write = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    store.write_features("users", pl.DataFrame({
        "user_id": [1, 2, 3], "ts": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * 3,
        "age": pl.Series([1, 2, 3], dtype=pl.Int32), "city": ["a", "b", "c"],
    }), write_id="killed")
    """
)


def test_a_commit_killed_before_its_record_is_recorded_on_open(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    make_store("delta").register_features(users_schema())
    child = subprocess.run([sys.executable, "-c", _KILL_AFTER_COMMIT, str(tmp_path / "repo")], timeout=60)
    assert child.returncode == -signal.SIGKILL
    reopened = make_store("delta")
    assert len(reopened.metadata.list_writes("users")) == 0  # nothing opened the table yet
    assert reopened.scan_group("users").collect().height == 3  # opening reconciles
    [record] = reopened.metadata.list_writes("users")
    assert (record.write_id, record.rows, record.mode, record.table_version) == ("killed", 3, "append", 1)
    assert record.details["reconciled"] is True
    assert reopened.write_features("users", users_frame([9], [0], [9]), write_id="killed") == record
    assert reopened.reconcile() == []  # idempotent
    assert_history_matches_log(reopened)


_LOOP = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    import polars as pl
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

    store = MaterializedFeatureStore(storage_path=sys.argv[1], config={"drift": {"enabled": False}})
    print("ready", flush=True)
    start = int(sys.argv[3])
    for i in range(start, start + int(sys.argv[2])):
        modes = ("append", "append", "merge")
        store.write_features("users", pl.DataFrame({
            "user_id": [i * 10 + j for j in range(5)], "ts": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * 5,
            "age": pl.Series([i] * 5, dtype=pl.Int32), "city": ["x"] * 5,
        }), mode=modes[i % 3], write_id=f"w{i:03d}")
    """
)


def test_random_sigkills_never_lose_or_duplicate_a_write(make_store: StoreFactory, tmp_path: Path) -> None:
    """Each trial runs two writers of the same write ids at once and SIGKILLs both at random moments.

    Trial t writes ids [10 t, 10 t + 30): the first ten retry what earlier trials may have
    written (no-ops), the rest are new, so every kill lands while writes are still to do.
    """
    per_trial, trials = 30, 10
    writes = 10 * (trials - 1) + per_trial
    make_store("delta").register_features(users_schema())
    rng = random.Random(9)
    repo = str(tmp_path / "repo")
    killed = 0
    for trial in range(trials):
        loop = [sys.executable, "-c", _LOOP, repo, str(per_trial), str(10 * trial)]
        children = [subprocess.Popen(loop, stdout=subprocess.PIPE) for _ in range(2)]
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        for child in children:
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(child.pid, signal.SIGKILL)
            killed += child.wait() == -signal.SIGKILL
    assert killed >= 2 * trials - 2  # (a child may finish every write before its kill)
    resume = [sys.executable, "-c", _LOOP, repo, str(writes), "0"]
    assert (
        subprocess.run(resume, timeout=180, stdout=subprocess.DEVNULL).returncode == 0
    )  # no-ops, then the rest
    store = make_store("delta")
    stored = store.scan_group("users", columns=["user_id", "age", SEQ_COLUMN]).collect()
    assert stored.height == writes * 5
    assert sorted(stored.get_column("user_id").to_list()) == [
        i * 10 + j for i in range(writes) for j in range(5)
    ]
    assert stored.get_column(SEQ_COLUMN).n_unique() == stored.height
    assert_history_matches_log(store)
    history = store.list_writes("users")
    assert sorted(w.write_id for w in history) == [f"w{i:03d}" for i in range(writes)]  # type: ignore[type-var]
    assert sum(w.rows for w in history) == writes * 5


def test_recording_a_commit_is_idempotent_in_the_registry(tmp_path: Path) -> None:
    from tauro_workbench.registry import FeatureStoreMetadata

    metadata = FeatureStoreMetadata(tmp_path)
    commit = {"write_id": "w1", "table_id": "t-a"}
    first = metadata.record_write("users", 1, mode="append", rows=3, table_version=1, details=commit)
    assert metadata.record_write("users", 1, mode="append", rows=3, table_version=1, details=commit) == first
    same_commit = {"write_id": "other", "table_id": "t-a", "reconciled": True}
    assert (
        metadata.record_write("users", 1, mode="append", rows=3, table_version=1, details=same_commit)
        == first
    )
    empty = {"write_id": "e1", "table_id": "t-a", "committed": False}
    noop = metadata.record_write("users", 1, mode="append", rows=0, table_version=1, details=empty)
    assert noop.id != first.id  # an empty append commits nothing: it is not that commit
    other_table = metadata.record_write(
        "users", 1, mode="append", rows=3, table_version=1, details={"table_id": "t-b"}
    )
    assert other_table.id not in (first.id, noop.id)
    assert metadata.find_write("users", 1, "w1") == first and metadata.find_write("users", 2, "w1") is None
    metadata.register_feature_group(users_schema())
    metadata.delete_feature_group("users")
    assert metadata.find_write("users", 1, "w1") is None  # a deleted registration's ids are free again
    again = metadata.record_write("users", 1, mode="append", rows=1, table_version=1, details=commit)
    assert again.id not in (first.id, noop.id, other_table.id)
    assert all("deleted_at" in r.details for r in metadata.list_writes("users")[:-1])


_RECORDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tauro_workbench.registry import FeatureStoreMetadata
    metadata = FeatureStoreMetadata(sys.argv[1])
    print("ready", flush=True)
    while not Path(sys.argv[1], "go").exists():
        time.sleep(0.002)
    for v in range(1, 21):
        metadata.record_write("users", 1, mode="append", rows=v, table_version=v,
                              details={"write_id": f"w{v}", "table_id": "t", "reconciled": sys.argv[2] == "1"})
    """
)


def test_a_writer_and_reconcilers_racing_leave_one_record_per_commit(tmp_path: Path) -> None:
    from tauro_workbench.registry import FeatureStoreMetadata

    FeatureStoreMetadata(tmp_path).schema_version()  # create the file before the race
    procs = [
        subprocess.Popen([sys.executable, "-c", _RECORDER, str(tmp_path), str(i % 2)], stdout=subprocess.PIPE)
        for i in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    (tmp_path / "go").touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    records = FeatureStoreMetadata(tmp_path).list_writes("users")
    assert sorted(r.table_version for r in records) == list(range(1, 21))  # type: ignore[type-var]


def test_a_writer_without_identity_completes_a_reconciled_record(tmp_path: Path) -> None:
    from tauro_workbench.registry import FeatureStoreMetadata

    metadata = FeatureStoreMetadata(tmp_path)
    details = {"write_id": "w1", "table_id": "t", "reconciled": True}
    reconciled = metadata.record_write("users", 1, mode="append", rows=3, table_version=4, details=details)
    engine = metadata.record_write(
        "users", 1, mode="append", rows=3, table_version=4, details={"engine": "spark"}
    )
    assert engine.id == reconciled.id and engine.details["engine"] == "spark" and engine.details["reconciled"]
    plain = metadata.record_write(
        "users", 1, mode="append", rows=3, table_version=5, details={"engine": "spark"}
    )
    assert plain.id != reconciled.id and len(metadata.list_writes("users")) == 2


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(["append", "merge", "overwrite"]), st.integers(1, 4), st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_reconciliation_rebuilds_exactly_the_lost_records(
    make_store: StoreFactory, tmp_path_factory: pytest.TempPathFactory, writes: list[tuple[str, int, bool]]
) -> None:
    """Oracle: the writes made. Records lost after their commit (a crash) are rebuilt; none is doubled."""
    store = make_store("delta", root=tmp_path_factory.mktemp("repo"))
    store.register_features(users_schema())
    for n, (mode, rows, lose) in enumerate(writes):
        frame = users_frame([n * 10 + i for i in range(rows)], [0] * rows, [n] * rows)
        record = store.write_features("users", frame, mode=mode, write_id=f"w{n}")
        if lose:
            store.metadata.database.run(
                lambda c, i=record.id: c.execute("DELETE FROM writes WHERE id=?", (i,)), what="lose a record"
            )
    reopened = make_store("delta", root=store.config.storage_path)
    history = reopened.list_writes("users")
    assert [
        (w.write_id, w.mode, w.rows, w.table_version)
        for w in sorted(history, key=lambda w: w.table_version or 0)
    ] == [(f"w{n}", mode, rows, n + 1) for n, (mode, rows, _) in enumerate(writes)]
    assert [
        bool(w.details.get("reconciled")) for w in sorted(history, key=lambda w: w.table_version or 0)
    ] == [lose for _, _, lose in writes]
    assert reopened.reconcile() == []
