"""Timestamps outside what every layer holds are refused up front; a bad online value nulls one entity."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tauro_workbench.exceptions import CorruptOnlineValueWarning, SchemaValidationError
from tauro_workbench.online.codec import ValueCodec
from tauro_workbench.online.redis import RedisOnlineStore
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.validation import TIMESTAMP_MAX, TIMESTAMP_MIN
from tests.conftest import RedisServer
from tests.online.conftest import at, make_store, user_rows, user_schema

EVENTS = FeatureGroupSchema(
    name="events",
    entity_keys=["id"],
    timestamp_key="ts",
    created_timestamp_key="created",
    features=[FeatureSchema("seen", "TIMESTAMP"), FeatureSchema("n", "INT")],
)


def far(year: int) -> pl.Series:
    """A UTC timestamp Python's datetime may not hold (built by Polars)."""
    return pl.select(pl.datetime(year, 1, 1, time_zone="UTC")).to_series()


def events(
    *, ts: pl.Series | None = None, created: pl.Series | None = None, seen: pl.Series | None = None
) -> pl.DataFrame:
    now = pl.Series([datetime(2024, 1, 1, tzinfo=UTC)])
    return pl.DataFrame(
        {
            "id": [1],
            "ts": ts if ts is not None else now,
            "created": created if created is not None else now,
            "seen": seen if seen is not None else now,
            "n": pl.Series([1], dtype=pl.Int32),
        }
    )


@pytest.mark.parametrize(
    ("column", "frame", "shown"),
    [
        ("timestamp key 'ts'", events(ts=far(10_000)), "+10000-01-01"),
        ("timestamp key 'ts'", events(ts=pl.Series([datetime(1500, 1, 1, tzinfo=UTC)])), "1500-01-01"),
        ("created timestamp key 'created'", events(created=far(2263)), "2263-01-01"),
        ("feature 'seen'", events(seen=far(-5)), "-0005-01-01"),
    ],
)
def test_out_of_range_timestamps_are_refused_before_any_write(
    tmp_path: Path, column: str, frame: pl.DataFrame, shown: str
) -> None:
    store = MaterializedFeatureStore(
        storage_path=tmp_path,
        config={"enable_online_store": True, "sync_to_online": True, "drift": {"enabled": False}},
    )
    store.register_features(EVENTS)
    with pytest.raises(SchemaValidationError) as raised:
        store.write_features("events", frame)
    message = str(raised.value)
    assert column in message and shown in message
    assert TIMESTAMP_MIN.isoformat() in message and TIMESTAMP_MAX.isoformat() in message
    assert store.metadata.list_writes("events") == []  # nothing committed, nothing synced
    assert store.online.read(EVENTS, [(1,)], ["n"]) == [None]


def test_the_range_bounds_are_accepted_and_round_trip_online(redis_server: RedisServer) -> None:
    store = make_store("redis", redis_server.url)
    bounds = pl.Series([TIMESTAMP_MIN, TIMESTAMP_MAX])
    frame = EVENTS.validate(
        pl.DataFrame(
            {
                "id": [1, 2],
                "ts": bounds,
                "created": bounds,
                "seen": bounds,
                "n": pl.Series([1, 2], dtype=pl.Int32),
            }
        )
    )
    store.write(EVENTS, frame)
    assert store.read(EVENTS, [(1,), (2,)], ["seen"]) == [(TIMESTAMP_MIN,), (TIMESTAMP_MAX,)]
    columns = store.read_columns(EVENTS, [(2,), (1,)], ["seen"])
    assert columns[0].to_list() == [TIMESTAMP_MAX, TIMESTAMP_MIN]


def corrupt(store: RedisOnlineStore, schema: FeatureGroupSchema, entity: int, value: bytes) -> None:
    store.client.set(f"{store.group_tag(schema)}i{entity}", value)


@pytest.mark.parametrize(
    "value",
    [
        b"garbage",  # no order prefix
        b"0" * 36 + b"[1, 2",  # truncated JSON
        b"0" * 36 + b'["x","y"]',  # wrong arity
        b"1" * 36 + b'[1,"not a number",null]',  # wrong type
    ],
)
def test_a_corrupt_value_reads_as_null_for_its_entity_only(redis_server: RedisServer, value: bytes) -> None:
    store = make_store("redis", redis_server.url)
    assert isinstance(store, RedisOnlineStore)
    schema = user_schema()
    store.write(schema, user_rows(schema, [(i, at(-1), i, 0.5, f"c{i}") for i in range(3)]))
    corrupt(store, schema, 1, value)
    with pytest.warns(CorruptOnlineValueWarning, match=r"entity \(1,\)"):
        rows = store.read(schema, [(0,), (1,), (2,)], ["age", "score", "city"])
    assert rows == [(0, 0.5, "c0"), None, (2, 0.5, "c2")]
    with pytest.warns(CorruptOnlineValueWarning, match="read as null"):
        columns = store.read_columns(schema, [(0,), (1,), (2,)], ["age", "score", "city"])
    assert [c.to_list() for c in columns] == [[0, None, 2], [0.5, None, 0.5], ["c0", None, "c2"]]
    assert columns[0].dtype == pl.Int32


def test_a_time_python_cannot_hold_reads_as_null_with_a_warning(redis_server: RedisServer) -> None:
    """A value written before the range check (or by another writer) must not fail the batch."""
    store = make_store("redis", redis_server.url)
    assert isinstance(store, RedisOnlineStore)
    good = EVENTS.validate(events())
    store.write(EVENTS, pl.concat([good, good.with_columns(id=pl.lit(2, pl.Int64))]))
    # what the codec writes for a year-10000 "seen", bypassing validation
    unchecked = pl.DataFrame(
        {"id": [3], "ts": good["ts"], "created": good["created"], "seen": far(10_000), "n": [3]}
    )
    text = unchecked.select(ValueCodec(EVENTS).value_expr(unchecked)).item()
    corrupt(store, EVENTS, 3, text.encode())
    with pytest.warns(CorruptOnlineValueWarning, match="OverflowError"):
        assert store.read(EVENTS, [(1,), (3,)], ["n", "seen"])[1] is None
    with pytest.warns(CorruptOnlineValueWarning, match=r"entity \(3,\)"):
        columns = store.read_columns(EVENTS, [(1,), (3,), (2,)], ["n", "seen"])
    assert columns[0].to_list() == [1, None, 1]
    assert columns[1].to_list()[1] is None and columns[1].null_count() == 1


def test_through_the_store_one_bad_entity_does_not_fail_the_request(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    store = MaterializedFeatureStore(
        storage_path=tmp_path,
        config={
            "enable_online_store": True,
            "online_store": {
                "type": "redis",
                "url": redis_server.url,
                "key_prefix": f"ts{abs(hash(tmp_path))}",
            },
            "drift": {"enabled": False},
        },
    )
    schema = user_schema()
    store.register_features(schema)
    frame = pl.DataFrame(
        {
            "user_id": [1, 2],
            "ts": [at(-5)] * 2,
            "age": pl.Series([10, 20], dtype=pl.Int32),
            "score": [1.0, 2.0],
            "city": ["a", "b"],
        }
    )
    store.write_features("user", frame)
    store.materialize_online("user")
    online = store.online
    assert isinstance(online, RedisOnlineStore)
    generation = online.generation(schema)  # the full sync loaded a fresh generation
    online.client.set(f"{online.group_tag(schema)}{generation}i2", b"\x00broken")
    with pytest.warns(CorruptOnlineValueWarning):
        got = store.get_online_features(["age", "city"], {"user_id": [1, 2]})
    assert isinstance(got, pl.DataFrame) and got.rows() == [(1, 10, "a"), (2, None, None)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy entity reads without any warning
        assert store.get_online_features(["age"], {"user_id": 1}) == {"age": 10}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.one_of(
        st.binary(max_size=60),
        st.builds(lambda p, b: p + b, st.just(b"0" * 36), st.binary(max_size=30)),
        st.builds(
            lambda p, j: p + j.encode(),
            st.from_regex(rb"\A[0-9]{36}\Z"),
            st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.floats()), max_size=4).map(
                lambda v: json.dumps(v)
            ),
        ),
    )
)
def test_no_stored_bytes_fail_a_batch_read(redis_server: RedisServer, junk: bytes) -> None:
    """Whatever a key holds, healthy entities read intact and the batch never raises."""
    store = make_store("redis", redis_server.url)
    assert isinstance(store, RedisOnlineStore)
    schema = user_schema()
    store.write(schema, user_rows(schema, [(0, at(-1), 7, 0.5, "ok"), (2, at(-1), 9, 1.5, "fine")]))
    corrupt(store, schema, 1, junk)
    entities = [(0,), (1,), (2,)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptOnlineValueWarning)
        rows = store.read(schema, entities, ["age", "score", "city"])
        columns = store.read_columns(schema, entities, ["age", "score", "city"])
    assert rows[0] == (7, 0.5, "ok") and rows[2] == (9, 1.5, "fine")
    assert [c[0] for c in columns] == [7, 0.5, "ok"] and [c[2] for c in columns] == [9, 1.5, "fine"]
    assert [c.dtype for c in columns] == [pl.Int32, pl.Float64, pl.String]
