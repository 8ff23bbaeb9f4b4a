"""FeatureStoreMetadata in one process: groups and versions, lineage, writes, events, documents,
the schema cache, the lock, connections and the layout version."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.exceptions import (
    FeatureGroupNotFoundError,
    FeatureNotFoundError,
    FeatureRegistryError,
    LineageCycleError,
    MetadataError,
)
from tauro_workbench.registry import SCHEMA_VERSION, FeatureStoreMetadata
from tauro_workbench.schema import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
from tauro_workbench.sqlite_database import SQLiteDatabase


def group(
    name: str = "users", version: int = 1, features: tuple[str, ...] = ("age",), dtype: str = "INT"
) -> FeatureGroupSchema:
    return FeatureGroupSchema(
        name,
        version=version,
        entity_keys=["user_id"],
        timestamp_key="event_time",
        features=[FeatureSchema(f, dtype, "NUMERICAL") for f in features],
    )


@pytest.fixture
def metadata() -> FeatureStoreMetadata:
    return FeatureStoreMetadata()


# -- the Tauro reference example and construction ---------------------------------------
def test_reference_readme_example() -> None:
    user_features_schema = FeatureGroupSchema(
        name="user_features",
        version=1,
        entity_keys=["user_id"],
        timestamp_key="event_timestamp",
        description="User demographic and behavioral features",
        features=[
            FeatureSchema("age", DataType.INT, FeatureType.NUMERICAL),
            FeatureSchema("country", DataType.STRING, FeatureType.CATEGORICAL),
        ],
    )
    metadata = FeatureStoreMetadata()
    metadata.register_feature_group(user_features_schema)
    features = metadata.list_features("user_features")
    assert features == ["age", "country"]
    assert metadata.get_feature("user_features", "country").data_type == DataType.STRING
    assert metadata.list_feature_groups() == ["user_features"]


def test_in_memory_registries_are_private_and_shared_by_threads() -> None:
    first, second = FeatureStoreMetadata(), FeatureStoreMetadata()
    assert first.in_memory and repr(first) == "FeatureStoreMetadata(in memory)"
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            first.register_feature_group(group(f"g{i}"))
            first.register_feature_group(group("shared"))
            first.set_lineage(f"g{i}", ["shared"])
            first.record_write(f"g{i}", 1, mode="append", rows=i)
            assert first.get_feature_group(f"g{i}").name == f"g{i}"
        except BaseException as err:  # surfaced below: threads swallow exceptions
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert first.list_feature_groups() == sorted([*(f"g{i}" for i in range(8)), "shared"])
    assert first.get_downstream("shared") == sorted(f"g{i}" for i in range(8))
    assert second.list_feature_groups() == []


def test_file_registry_lives_at_storage_path_in_wal_mode(tmp_path: Path) -> None:
    metadata = FeatureStoreMetadata(tmp_path / "repo")
    metadata.register_feature_group(group())
    path = tmp_path / "repo" / "registry.db"
    assert metadata.location == str(path) and not metadata.in_memory
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    from_config = FeatureStoreMetadata(config=FeatureStoreConfig(storage_path=str(tmp_path / "repo")))
    assert from_config.list_feature_groups() == ["users"]
    explicit = FeatureStoreMetadata(db_path=path)
    assert explicit.list_feature_groups() == ["users"]
    assert repr(explicit) == f"FeatureStoreMetadata({str(path)!r})"
    assert FeatureStoreMetadata(db_path=":memory:").in_memory


# -- feature groups and versions ---------------------------------------------------------
def test_identical_re_registration_is_a_no_op(metadata: FeatureStoreMetadata) -> None:
    assert metadata.ensure_feature_group(group()) is True
    assert metadata.ensure_feature_group(group()) is False
    assert metadata.register_feature_group(group()) == group()
    assert metadata.list_versions("users") == [1]


def test_a_changed_schema_under_the_same_version_says_what_changed(metadata: FeatureStoreMetadata) -> None:
    metadata.register_feature_group(group(features=("age", "score")))
    metadata.register_feature_group(group(version=2, features=("age",)))
    with pytest.raises(FeatureRegistryError) as info:
        metadata.register_feature_group(group(features=("age", "country"), dtype="BIGINT"))
    message = str(info.value)
    assert "'users' version 1 is already registered" in message
    assert "added ['country']" in message and "removed ['score']" in message and "changed ['age']" in message
    assert "as version 3" in message
    assert metadata.get_feature_group("users", 1) == group(features=("age", "score"))


def test_get_feature_group_returns_the_latest_or_the_asked_version(metadata: FeatureStoreMetadata) -> None:
    for version in (1, 3, 2):
        metadata.register_feature_group(
            group(version=version, features=tuple(f"f{i}" for i in range(version)))
        )
    assert metadata.get_feature_group("users").version == 3
    assert metadata.get_feature_group("users", 2).feature_names == ["f0", "f1"]
    assert metadata.list_versions("users") == [1, 2, 3]
    assert metadata.list_features("users") == ["f0", "f1", "f2"]
    assert metadata.find_feature_group("nobody") is None
    assert metadata.find_feature_group("users", 9) is None


def test_missing_groups_and_features_name_what_exists(metadata: FeatureStoreMetadata) -> None:
    metadata.register_feature_group(group())
    with pytest.raises(FeatureGroupNotFoundError, match=r"'items' is not registered.*\[users\]"):
        metadata.get_feature_group("items")
    with pytest.raises(FeatureGroupNotFoundError, match=r"no version 7.*\[1\]") as info:
        metadata.get_feature_group("users", 7)
    assert info.value.version == 7
    with pytest.raises(FeatureNotFoundError, match="height"):
        metadata.get_feature("users", "height")
    with pytest.raises(FeatureGroupNotFoundError):
        metadata.list_features("items")


def test_delete_one_version_or_all(metadata: FeatureStoreMetadata) -> None:
    metadata.register_feature_group(group())
    metadata.register_feature_group(group(version=2, features=("age", "x")))
    assert metadata.get_feature_group("users").version == 2  # cached now
    metadata.record_write("users", 2, mode="append", rows=1)
    metadata.delete_feature_group("users", version=2)
    assert metadata.get_feature_group("users").version == 1  # the cache was cleared
    with pytest.raises(FeatureGroupNotFoundError, match="no version 2"):
        metadata.delete_feature_group("users", version=2)
    metadata.delete_feature_group("users")
    assert metadata.list_feature_groups() == []
    assert len(metadata.list_writes("users")) == 1  # history is kept
    with pytest.raises(FeatureGroupNotFoundError):
        metadata.delete_feature_group("users")


# -- lineage -----------------------------------------------------------------------------
def test_lineage_queries_walk_the_dag(metadata: FeatureStoreMetadata) -> None:
    metadata.set_lineage("user_features", ["silver.users", "silver.events"])
    metadata.set_lineage("user_features.age", "user_features")
    metadata.set_lineage("training_set", ["user_features.age", "silver.labels"])
    metadata.set_lineage("user_features", ["silver.users"])  # again: a no-op
    assert metadata.get_upstream("training_set") == [
        "silver.events",
        "silver.labels",
        "silver.users",
        "user_features",
        "user_features.age",
    ]
    assert metadata.get_upstream("training_set", recursive=False) == ["silver.labels", "user_features.age"]
    assert metadata.get_downstream("silver.users") == ["training_set", "user_features", "user_features.age"]
    assert metadata.get_downstream("silver.users", recursive=False) == ["user_features"]
    assert metadata.get_upstream("unknown") == [] and len(metadata.lineage_edges()) == 5


def test_cycles_are_rejected_naming_the_cycle(metadata: FeatureStoreMetadata) -> None:
    metadata.set_lineage("b", ["a"])
    metadata.set_lineage("c", ["b"])
    with pytest.raises(LineageCycleError) as info:
        metadata.set_lineage("a", ["c"])
    assert info.value.cycle == ["c", "a", "b", "c"]
    assert "c -> a -> b -> c" in str(info.value)
    with pytest.raises(LineageCycleError) as self_loop:
        metadata.set_lineage("x", ["x"])
    assert self_loop.value.cycle == ["x", "x"]
    assert isinstance(self_loop.value, ValueError)


def test_one_call_adds_all_its_edges_or_none(metadata: FeatureStoreMetadata) -> None:
    metadata.set_lineage("b", ["a"])
    with pytest.raises(LineageCycleError):
        metadata.set_lineage("a", ["z", "b"])
    assert metadata.lineage_edges() == [("a", "b")]


def test_delete_lineage_and_bad_names(metadata: FeatureStoreMetadata) -> None:
    metadata.set_lineage("c", ["a", "b"])
    assert metadata.delete_lineage("c", "a") == 1
    assert metadata.lineage_edges() == [("b", "c")]
    assert metadata.delete_lineage("c") == 1
    assert metadata.lineage_edges() == []
    with pytest.raises(FeatureRegistryError, match="non-empty"):
        metadata.set_lineage("c", [""])


def _reaches(edges: set[tuple[int, int]], start: int, goal: int) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for up, down in edges:
            if up == node and down not in seen:
                seen.add(down)
                todo.append(down)
    return False


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=30))
def test_an_edge_is_rejected_iff_it_would_close_a_cycle(pairs: list[tuple[int, int]]) -> None:
    """Oracle: brute-force reachability over the accepted edges."""
    metadata = FeatureStoreMetadata()
    accepted: set[tuple[int, int]] = set()
    for up, down in pairs:
        closes_cycle = _reaches(accepted, down, up)
        try:
            metadata.set_lineage(f"n{down}", [f"n{up}"])
        except LineageCycleError as err:
            assert closes_cycle
            cycle = [int(n[1:]) for n in err.cycle]
            assert cycle[0] == cycle[-1] == up and cycle[1] == down
            assert all(step in accepted | {(up, down)} for step in itertools.pairwise(cycle))
        else:
            assert not closes_cycle
            accepted.add((up, down))
    assert metadata.lineage_edges() == sorted((f"n{u}", f"n{d}") for u, d in accepted)
    for node in range(7):
        expected = sorted(f"n{o}" for o in range(7) if o != node and _reaches(accepted, node, o))
        assert metadata.get_downstream(f"n{node}") == expected
    metadata.close()


# -- write history -----------------------------------------------------------------------
def test_last_updated_is_the_last_data_write(metadata: FeatureStoreMetadata) -> None:
    metadata.register_feature_group(group())
    assert metadata.get_last_updated("users") is None  # registration is not a write
    first = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    metadata.record_write("users", 1, mode="append", rows=10, written_at=first)
    later_naive = datetime(2024, 3, 1, 13, 0)  # naive = UTC
    metadata.record_write("users", 1, mode="append", rows=5, written_at=later_naive)
    # 14:30 in UTC+2 is 12:30 UTC: earlier than the naive 13:00 despite the bigger wall clock
    metadata.record_write(
        "users",
        1,
        mode="merge",
        rows=1,
        written_at=datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
    )
    assert metadata.get_last_updated("users") == datetime(2024, 3, 1, 13, 0, tzinfo=UTC)
    metadata.register_feature_group(group(version=2, features=("age", "x")))
    assert metadata.get_last_updated("users", version=2) is None
    assert metadata.get_last_updated("other") is None
    before = datetime.now(UTC)
    record = metadata.record_write("users", 2, mode="overwrite", rows=3)
    assert before <= record.written_at <= datetime.now(UTC)
    assert metadata.get_last_updated("users") == record.written_at


def test_list_and_update_writes(metadata: FeatureStoreMetadata) -> None:
    ids = [
        metadata.record_write("users", v, mode="append", rows=r, table_version=r, details={"r": r}).id
        for v, r in [(1, 1), (1, 2), (2, 3)]
    ]
    assert ids == sorted(ids)
    assert [w.rows for w in metadata.list_writes("users")] == [1, 2, 3]
    assert [w.rows for w in metadata.list_writes("users", 1)] == [1, 2]
    assert [w.rows for w in metadata.list_writes("users", limit=2)] == [2, 3]
    metadata.update_write(ids[0], {"profile": {"mean": 1.5}, "when": datetime(2024, 1, 1)})
    written = metadata.list_writes("users")[0]
    assert written.details == {"r": 1, "profile": {"mean": 1.5}, "when": "2024-01-01 00:00:00"}
    assert written.table_version == 1 and written.mode == "append" and written.written_at.tzinfo is not None
    with pytest.raises(MetadataError, match="No write with id 999"):
        metadata.update_write(999, {})
    assert metadata.list_writes("nobody") == []


# -- events and documents ----------------------------------------------------------------
def test_events_come_back_in_id_order(metadata: FeatureStoreMetadata) -> None:
    kinds = ["registered", "written", "drift", "written", "registered"]
    records = [
        metadata.record_event(k, {"i": i}, group="users" if i % 2 else None) for i, k in enumerate(kinds)
    ]
    assert [r.id for r in records] == sorted(r.id for r in records)
    events = metadata.list_events()
    assert [e.payload["i"] for e in events] == [0, 1, 2, 3, 4]
    assert [e.id for e in metadata.list_events(kind="written")] == [records[1].id, records[3].id]
    assert [e.payload["i"] for e in metadata.list_events(group="users")] == [1, 3]
    assert [e.payload["i"] for e in metadata.list_events(after_id=records[2].id)] == [3, 4]
    assert [e.payload["i"] for e in metadata.list_events(limit=2)] == [0, 1]
    assert events[1].group == "users" and events[0].group is None


def test_documents_crud(metadata: FeatureStoreMetadata) -> None:
    assert metadata.find_document("source", "silver.users") is None
    metadata.put_document("source", "silver.users", {"path": "a.parquet"})
    metadata.put_document("source", "silver.events", {"path": "b.parquet"})
    metadata.put_document("virtual", "silver.users", {"sql": "SELECT 1"})
    metadata.put_document("source", "silver.users", {"path": "c.parquet", "format": "parquet"})
    assert metadata.find_document("source", "silver.users") == {"path": "c.parquet", "format": "parquet"}
    assert list(metadata.list_documents("source")) == ["silver.events", "silver.users"]
    assert metadata.list_documents("virtual") == {"silver.users": {"sql": "SELECT 1"}}
    assert metadata.delete_document("source", "silver.users") is True
    assert metadata.delete_document("source", "silver.users") is False
    assert list(metadata.list_documents("source")) == ["silver.events"]
    with pytest.raises(FeatureRegistryError, match="document name"):
        metadata.put_document("source", " ", {})


# -- cache -------------------------------------------------------------------------------
def test_other_writers_are_seen_when_the_cache_entry_expires(tmp_path: Path) -> None:
    writer = FeatureStoreMetadata(tmp_path)
    long_ttl = FeatureStoreMetadata(
        config=FeatureStoreConfig(storage_path=str(tmp_path), metadata_cache_ttl_seconds=600)
    )
    short_ttl = FeatureStoreMetadata(
        config=FeatureStoreConfig(storage_path=str(tmp_path), metadata_cache_ttl_seconds=0.05)
    )
    no_cache = FeatureStoreMetadata(
        config=FeatureStoreConfig(storage_path=str(tmp_path), metadata_cache_ttl_seconds=0)
    )
    writer.register_feature_group(group())
    for reader in (long_ttl, short_ttl, no_cache):
        assert reader.get_feature_group("users").version == 1
    writer.register_feature_group(group(version=2, features=("age", "x")))
    assert no_cache.get_feature_group("users").version == 2
    assert long_ttl.get_feature_group("users").version == 1  # served from its cache
    time.sleep(0.1)
    assert short_ttl.get_feature_group("users").version == 2  # expired: read again
    assert long_ttl.get_feature_group("users", 2).version == 2  # a different key is read


def test_own_writes_clear_the_cache(tmp_path: Path) -> None:
    metadata = FeatureStoreMetadata(
        config=FeatureStoreConfig(storage_path=str(tmp_path), metadata_cache_ttl_seconds=600)
    )
    metadata.register_feature_group(group())
    assert metadata.get_feature_group("users").version == 1
    metadata.register_feature_group(group(version=2, features=("age", "x")))
    assert metadata.get_feature_group("users").version == 2


# -- locks, connections, layout ----------------------------------------------------------
def test_a_held_lock_times_out_with_metadata_error(tmp_path: Path) -> None:
    metadata = FeatureStoreMetadata(
        config=FeatureStoreConfig(storage_path=str(tmp_path), lock_timeout_seconds=0.1)
    )
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with metadata.database.lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(MetadataError, match=r"Timed out after 0\.1s waiting for the write lock"):
            metadata.register_feature_group(group())
        assert metadata.list_feature_groups() == []  # reads do not need the lock
    finally:
        release.set()
        holder.join()
    metadata.register_feature_group(group())
    assert metadata.list_feature_groups() == ["users"]


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    metadata = FeatureStoreMetadata(tmp_path)
    for _ in range(5):
        thread = threading.Thread(target=metadata.list_feature_groups)
        thread.start()
        thread.join()
    # the main thread's plus at most the last finished one (closed when the next thread opens)
    assert metadata.database.open_connections() <= 2
    with metadata:
        pass
    assert metadata.database.open_connections() == 0
    assert repr(metadata).endswith(", closed)")
    metadata.close()  # idempotent
    with pytest.raises(MetadataError, match="is closed"):
        metadata.list_feature_groups()
    assert metadata.health_check() is False


def test_layout_version_upgrades_old_files_and_refuses_newer_ones(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as raw:  # a file from before user_version was kept
        raw.execute(
            "CREATE TABLE feature_groups (name TEXT NOT NULL, version INTEGER NOT NULL, schema_json TEXT NOT NULL,"
            " fingerprint TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (name, version))"
        )
        raw.execute(
            "INSERT INTO feature_groups VALUES (?, 1, ?, ?, '2024-01-01T00:00:00+00:00')",
            ("users", group().to_json(), group().fingerprint()),
        )
    metadata = FeatureStoreMetadata(tmp_path)
    assert metadata.schema_version() == SCHEMA_VERSION
    assert metadata.get_feature_group("users") == group()
    assert metadata.list_events() == []
    metadata.close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(MetadataError, match="newer than this release"):
        FeatureStoreMetadata(tmp_path)


def test_sqlite_errors_are_wrapped_in_metadata_error(metadata: FeatureStoreMetadata) -> None:
    with pytest.raises(MetadataError, match="no such table") as info:
        metadata.database.run(
            lambda c: c.execute("SELECT * FROM missing").fetchall(), what="bad", write=False
        )
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert metadata.health_check() is True
    assert repr(SQLiteDatabase(":memory:", migrations={})) == "SQLiteDatabase(':memory:')"
