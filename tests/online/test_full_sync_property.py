"""Online equals the offline latest row per entity, whatever the writes (property, both backends).

The oracle is brute force over the offline rows (read back with ``_tauro_seq``): per entity the
row with the greatest event time, then created time (null lowest), then ``_tauro_seq``. The
property holds after every sync: incremental, full, first, after merges, backfills that remove
the newest row, and overwrites; and, with ``sync_to_online``, after every write.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.connection import Connection

from tauro_workbench.online.redis import RedisOnlineStore
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.offline_table import SEQ_COLUMN
from tests.conftest import RedisServer
from tests.online.conftest import user_rows, user_schema

BASE = datetime(2024, 1, 1, tzinfo=UTC)
ENTITIES = list(range(4))

# few distinct times, so that event-time and created-time ties are common
ROW = st.tuples(
    st.sampled_from(ENTITIES),
    st.integers(0, 3),  # event time: BASE + hours
    st.none() | st.integers(0, 2),  # created time: BASE + minutes
    st.integers(0, 10_000),
)
ROWS = st.lists(ROW, min_size=1, max_size=5)
WRITE = st.one_of(
    st.tuples(st.just("append"), ROWS),
    st.tuples(st.just("merge"), ROWS),
    st.tuples(st.just("overwrite"), ROWS),
    # a backfill of [lo, hi) hours with rows possibly fewer than it removes (an offline correction)
    st.tuples(st.just("backfill"), st.lists(ROW, max_size=3), st.integers(0, 3), st.integers(1, 4)),
)
SYNC = st.tuples(st.just("sync"), st.booleans())  # full=True or incremental


def schema_of(created: bool) -> FeatureGroupSchema:
    return FeatureGroupSchema(
        name="prop",
        entity_keys=["user_id"],
        timestamp_key="ts",
        created_timestamp_key="created" if created else None,
        features=[FeatureSchema("v", "INT")],
    )


def frame_of(schema: FeatureGroupSchema, rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    data: dict[str, Any] = {
        "user_id": [r[0] for r in rows],
        "ts": [BASE + timedelta(hours=r[1]) for r in rows],
        "v": [r[3] for r in rows],
    }
    types: dict[str, pl.DataType] = {
        "user_id": pl.Int64(),
        "ts": pl.Datetime("us", "UTC"),
        "v": pl.Int32(),
    }
    if schema.created_timestamp_key:
        data["created"] = [None if r[2] is None else BASE + timedelta(minutes=r[2]) for r in rows]
        types["created"] = pl.Datetime("us", "UTC")
    return pl.DataFrame(data, schema=types)


def oracle(store: MaterializedFeatureStore, schema: FeatureGroupSchema) -> list[int | None]:
    """The offline latest value per entity, by brute force over the stored rows."""
    rows = store.scan_group(schema.name, columns=[*schema.columns, SEQ_COLUMN]).collect().to_dicts()
    best: dict[int, tuple[tuple[Any, ...], int]] = {}
    for row in rows:
        created = row.get("created")
        rank = (row["ts"], (0, BASE) if created is None else (1, created), row[SEQ_COLUMN])
        if row["user_id"] not in best or rank > best[row["user_id"]][0]:
            best[row["user_id"]] = (rank, row["v"])
    return [best[e][1] if e in best else None for e in ENTITIES]


def online(store: MaterializedFeatureStore) -> list[int | None]:
    frame = store.get_online_features(["prop.v"], {"user_id": ENTITIES})
    assert isinstance(frame, pl.DataFrame)
    return frame.get_column("v").to_list()


def apply(store: MaterializedFeatureStore, schema: FeatureGroupSchema, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "backfill":
        _, rows, lo, span = op
        start = BASE + timedelta(hours=lo)
        store.backfill(schema.name, frame_of(schema, rows), start=start, end=start + timedelta(hours=span))
    else:
        store.write_features(schema.name, frame_of(schema, op[1]), mode=kind)


def make(backend: str, path: str, server: RedisServer | None, *, created: bool, on_write: bool) -> Any:
    config: dict[str, Any] = {"type": "memory"}
    if backend == "redis":
        assert server is not None
        prefix = f"p{uuid.uuid4().hex[:10]}"
        config = {"type": "redis", "url": server.url, "key_prefix": prefix, "batch_size": 2}
    store = MaterializedFeatureStore(
        storage_path=path,
        config={
            "enable_online_store": True,
            "online_store": config,
            "sync_to_online": on_write,
            "drift": {"enabled": False},
        },
    )
    schema = schema_of(created)
    store.register_features(schema)
    return store, schema


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, RedisServer | None]:
    server = request.getfixturevalue("redis_server") if request.param == "redis" else None
    return request.param, server


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=ROWS,
    ops=st.lists(st.one_of(WRITE, SYNC), max_size=6),
    created=st.booleans(),
)
def test_explicit_syncs_equal_the_offline_latest_row(
    backend: tuple[str, RedisServer | None], first: list[Any], ops: list[tuple[Any, ...]], created: bool
) -> None:
    kind, server = backend
    with tempfile.TemporaryDirectory() as path:
        store, schema = make(kind, path, server, created=created, on_write=False)
        store.write_features(schema.name, frame_of(schema, first))
        report = store.materialize_online(schema.name)  # the first sync is a full one
        assert report.full and report.status == "ok"
        assert online(store) == oracle(store, schema)
        for op in ops:
            if op[0] == "sync":
                store.materialize_online(schema.name, full=op[1])
                assert online(store) == oracle(store, schema), op
            else:
                apply(store, schema, op)
        store.materialize_online(schema.name)  # incremental, or full after a rewrite
        assert online(store) == oracle(store, schema)
        full = store.materialize_online(schema.name, full=True)
        assert full.full and online(store) == oracle(store, schema)
        store.online.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=ROWS, ops=st.lists(WRITE, max_size=6), created=st.booleans())
def test_sync_on_write_equals_the_offline_latest_row_after_every_write(
    backend: tuple[str, RedisServer | None], first: list[Any], ops: list[tuple[Any, ...]], created: bool
) -> None:
    kind, server = backend
    with tempfile.TemporaryDirectory() as path:
        store, schema = make(kind, path, server, created=created, on_write=True)
        store.write_features(schema.name, frame_of(schema, first))
        assert online(store) == oracle(store, schema)
        for op in ops:
            apply(store, schema, op)
            assert online(store) == oracle(store, schema), op
            assert store.metadata.list_writes(schema.name)[-1].details["online"]["status"] == "ok"
        assert store.materialize_online(schema.name).status == "ok"
        assert online(store) == oracle(store, schema)
        store.online.close()


STATIC = FeatureGroupSchema(name="static", entity_keys=["user_id"], features=[FeatureSchema("v", "INT")])
STATIC_OP = st.one_of(
    st.tuples(st.sampled_from(["append", "merge", "overwrite"]), st.lists(ROW, min_size=1, max_size=4)),
    SYNC,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=ROWS, ops=st.lists(STATIC_OP, max_size=6), on_write=st.booleans())
def test_groups_without_event_time_keep_the_last_written_row(
    backend: tuple[str, RedisServer | None], first: list[Any], ops: list[tuple[Any, ...]], on_write: bool
) -> None:
    kind, server = backend
    with tempfile.TemporaryDirectory() as path:
        store, _ = make(kind, path, server, created=False, on_write=on_write)
        store.register_features(STATIC)

        def write(mode: str, rows: list[Any]) -> None:
            frame = pl.DataFrame(
                {"user_id": [r[0] for r in rows], "v": [r[3] for r in rows]},
                schema={"user_id": pl.Int64, "v": pl.Int32},
            )
            store.write_features("static", frame, mode=mode)

        def latest() -> list[int | None]:  # the oracle: the row with the greatest _tauro_seq
            rows = store.scan_group("static", columns=["user_id", "v", SEQ_COLUMN]).collect().to_dicts()
            best = {r["user_id"]: r for r in sorted(rows, key=lambda r: r[SEQ_COLUMN])}
            return [best[e]["v"] if e in best else None for e in ENTITIES]

        def read() -> list[int | None]:
            frame = store.get_online_features(["static.v"], {"user_id": ENTITIES})
            assert isinstance(frame, pl.DataFrame)
            return frame.get_column("v").to_list()

        write("append", first)
        store.materialize_online("static")
        for op in ops:
            if op[0] == "sync":
                store.materialize_online("static", full=op[1])
            else:
                write(*op)
            if on_write or op[0] == "sync":
                assert read() == latest(), op
        store.materialize_online("static")
        assert read() == latest()
        store.online.close()


def test_a_backfill_that_removed_the_newest_row_converges(tmp_path: Any, redis_server: RedisServer) -> None:
    """The issue's case, spelled out: a full resync replaces values that no longer exist offline."""
    store, schema = make("redis", str(tmp_path), redis_server, created=False, on_write=False)
    store.write_features("prop", frame_of(schema, [(0, 0, None, 1), (0, 3, None, 99), (1, 1, None, 5)]))
    store.materialize_online("prop")
    assert online(store)[:2] == [99, 5]
    # the correction: the window holding the newest row of entity 0 (and all of entity 1) is redone
    store.backfill(
        "prop",
        frame_of(schema, [(0, 2, None, 7)]),
        start=BASE + timedelta(hours=1),
        end=BASE + timedelta(hours=4),
    )
    report = store.materialize_online("prop")  # notices the backfill: a full resync
    assert report.full
    assert online(store)[:2] == [7, None] == oracle(store, schema)[:2]
    keys = store.online.client.keys(f"{store.online.group_tag(schema)}*")  # type: ignore[attr-defined]
    assert len([k for k in keys if not k.endswith((b"_sync", b"_gen"))]) == 1  # the old generation is gone
    store.online.close()


def test_readers_see_the_old_generation_until_the_switch_and_writers_follow_it(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = user_schema()
    prefix = f"g{uuid.uuid4().hex[:8]}"
    resync = RedisOnlineStore(redis_server.url, key_prefix=prefix, batch_size=10)
    reader = RedisOnlineStore(redis_server.url, key_prefix=prefix)
    writer = RedisOnlineStore(redis_server.url, key_prefix=prefix)
    old = [(i, BASE, i, 0.0, "old") for i in range(100)]
    writer.write(schema, user_rows(schema, old))
    assert reader.read(schema, [(0,)], ["city"]) == [("old",)]

    seen: list[list[Any]] = []
    original, state = Connection.read_response, {"n": 0, "inside": False}

    def read_response(self: Connection, *args: Any, **kwargs: Any) -> Any:
        if not state["inside"]:
            state["n"] += 1
            if state["n"] in (4, 7):  # mid-load of the new generation (10 batches)
                state["inside"] = True
                seen.append(reader.read(schema, [(i,) for i in range(100)], ["city"]))
                state["inside"] = False
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "read_response", read_response)
    new = [(i, BASE - timedelta(days=1), i, 1.0, "new") for i in range(50)]  # older rows, fewer entities
    resync.replace(schema, user_rows(schema, new))
    monkeypatch.undo()
    assert len(seen) == 2 and all(rows == [("old",)] * 100 for rows in seen)  # never empty, never mixed
    # after the switch: exactly the new rows (older ones too), the 50 others are gone
    assert reader.read(schema, [(i,) for i in range(100)], ["city"]) == [("new",)] * 50 + [None] * 50
    # a writer holding the old generation is redirected to the new one, not lost
    writer.write(schema, user_rows(schema, [(99, BASE, 99, 2.0, "late")]))
    assert reader.read(schema, [(99,)], ["city"]) == [("late",)]
    rows = [k for k in reader.client.keys(f"{reader.group_tag(schema)}*") if not k.endswith(b"_gen")]
    assert len(rows) == 51  # the old generation was deleted
    for store in (resync, reader, writer):
        store.close()
