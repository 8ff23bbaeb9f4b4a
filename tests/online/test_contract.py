"""The contract every online store keeps, run against InMemoryOnlineStore and RedisOnlineStore."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tauro_workbench.online import OnlineStore
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tests.online.conftest import at, user_rows, user_schema


def test_latest_row_per_entity_wins_within_a_write(online_store: OnlineStore) -> None:
    schema = user_schema()
    frame = user_rows(
        schema, [(1, at(-30), 30, 0.3, "c"), (1, at(-10), 10, 0.1, "a"), (2, at(-20), 20, 0.2, "b")]
    )
    result = online_store.write(schema, frame)
    assert (result.entities, result.applied) == (2, 2)
    assert online_store.read(schema, [(1,), (2,)], ["age", "city"]) == [(10, "a"), (20, "b")]


def test_columns_are_typed_and_in_request_order(online_store: OnlineStore) -> None:
    schema = user_schema(ttl="1h")
    frame = user_rows(schema, [(1, at(-10), 10, 0.5, "a"), (2, at(-7200), 20, 0.7, "expired")])
    online_store.write(schema, frame)
    columns = online_store.read_columns(schema, [(2,), (1,), (3,)], ["city", "age"])
    assert [(c.name, c.dtype) for c in columns] == [("city", pl.String), ("age", pl.Int32)]
    assert [c.to_list() for c in columns] == [[None, "a", None], [None, 10, None]]
    assert [c.len() for c in online_store.read_columns(schema, [], ["age"])] == [0]


def test_an_older_write_never_overwrites_a_newer_one(online_store: OnlineStore) -> None:
    schema = user_schema()
    online_store.write(schema, user_rows(schema, [(1, at(-10), 10, 0.1, "new")]))
    result = online_store.write(schema, user_rows(schema, [(1, at(-60), 60, 0.6, "old")]))
    assert result.applied == 0
    assert online_store.read(schema, [(1,)], ["city", "age"]) == [("new", 10)]


def test_equal_event_times_go_to_the_later_write(online_store: OnlineStore) -> None:
    schema, when = user_schema(), at(-10)
    online_store.write(schema, user_rows(schema, [(1, when, 1, 0.1, "first")]))
    online_store.write(schema, user_rows(schema, [(1, when, 2, 0.2, "second")]))
    assert online_store.read(schema, [(1,)], ["city"]) == [("second",)]


def test_created_time_breaks_event_time_ties(online_store: OnlineStore) -> None:
    schema, when = user_schema(created=True), at(-10)
    online_store.write(schema, user_rows(schema, [(1, when, at(-1), 1, 0.1, "created later")]))
    online_store.write(schema, user_rows(schema, [(1, when, at(-5), 2, 0.2, "created earlier")]))
    assert online_store.read(schema, [(1,)], ["city"]) == [("created later",)]


def test_groups_without_event_time_keep_the_last_write(online_store: OnlineStore) -> None:
    schema = user_schema(timestamp=False)
    online_store.write(schema, user_rows(schema, [(1, 1, 0.1, "a"), (1, 2, 0.2, "b")]))
    assert online_store.read(schema, [(1,)], ["city"]) == [("b",)]
    online_store.write(schema, user_rows(schema, [(1, 3, 0.3, "c")]))
    assert online_store.read(schema, [(1,)], ["age", "city"]) == [(3, "c")]


def test_missing_entities_and_other_key_types_read_as_null(online_store: OnlineStore) -> None:
    schema = user_schema()
    online_store.write(schema, user_rows(schema, [(1, at(-10), 10, None, None)]))
    assert online_store.read(schema, [(1,), ("1",), (2,)], ["age", "score", "city"]) == [
        (10, None, None),
        None,
        None,
    ]
    assert online_store.read(schema, [], ["age"]) == []


def test_values_past_the_ttl_read_as_null(online_store: OnlineStore) -> None:
    schema = user_schema(ttl="1h")
    rows = [
        (1, at(-7200), 1, 0.1, "stale"),
        (2, at(-60), 2, 0.2, "fresh"),
        (3, at(-3600 + 1.5), 3, 0.3, "ageing"),
    ]
    online_store.write(schema, user_rows(schema, rows))
    assert online_store.read(schema, [(1,), (2,), (3,)], ["city"]) == [None, ("fresh",), ("ageing",)]
    time.sleep(1.6)
    assert online_store.read(schema, [(1,), (2,), (3,)], ["city"]) == [None, ("fresh",), None]


def test_an_expired_newer_write_does_not_resurrect_older_values(online_store: OnlineStore) -> None:
    schema = user_schema(ttl=timedelta(minutes=5))
    online_store.write(schema, user_rows(schema, [(1, at(-60), 1, 0.1, "live")]))
    online_store.write(schema, user_rows(schema, [(1, at(-600), 2, 0.2, "older and expired")]))
    assert online_store.read(schema, [(1,)], ["city"]) == [("live",)]


def test_composite_keys_with_separators_stay_distinct(online_store: OnlineStore) -> None:
    schema = FeatureGroupSchema(
        name="pair",
        entity_keys=["a", "b"],
        timestamp_key="ts",
        entity_key_types={"a": "STRING", "b": "STRING"},
        features=[FeatureSchema("v", "BIGINT")],
    )
    frame = pl.DataFrame(
        {"a": ["x|", "x", "x\\", "x"], "b": ["y", "|y", "|y", "\\|y"], "ts": [at(-1)] * 4, "v": [1, 2, 3, 4]}
    )
    online_store.write(schema, schema.validate(frame))
    keys = [("x|", "y"), ("x", "|y"), ("x\\", "|y"), ("x", "\\|y"), ("x", "y")]
    assert online_store.read(schema, keys, ["v"]) == [(1,), (2,), (3,), (4,), None]


def test_date_keys(online_store: OnlineStore) -> None:
    schema = FeatureGroupSchema(
        name="daily", entity_keys=["day"], timestamp_key="ts", features=[FeatureSchema("v", "INT")]
    )
    frame = pl.DataFrame({"day": [date(999, 1, 2), date(2024, 5, 6)], "ts": [at(-1)] * 2, "v": [1, 2]})
    online_store.write(schema, schema.validate(frame))
    assert online_store.read(schema, [(date(2024, 5, 6),), (date(999, 1, 2),)], ["v"]) == [(2,), (1,)]


def test_versions_are_separate_and_groups_can_be_deleted(online_store: OnlineStore) -> None:
    v1 = user_schema()
    v2 = FeatureGroupSchema.from_dict({**v1.to_dict(), "version": 2})
    online_store.write(v1, user_rows(v1, [(1, at(-1), 1, 0.1, "v1"), (2, at(-1), 2, 0.2, "v1")]))
    online_store.write(v2, user_rows(v2, [(1, at(-1), 1, 0.1, "v2")]))
    online_store.set_sync_token(v1, "t1")
    assert online_store.get_sync_token(v1) == "t1"
    assert online_store.get_sync_token(v2) is None
    assert online_store.delete_group(v1) == 2
    assert online_store.read(v1, [(1,)], ["city"]) == [None]
    assert online_store.get_sync_token(v1) is None
    assert online_store.read(v2, [(1,)], ["city"]) == [("v2",)]
    assert online_store.health_check()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 20), st.integers(0, 1000)), min_size=1, max_size=60
    ),
    threads=st.integers(2, 4),
)
def test_concurrent_out_of_order_writers_end_with_the_newest_value(
    online_store: OnlineStore, writes: list[tuple[int, int, int]], threads: int
) -> None:
    """Oracle: per entity, the value of the greatest event time (ties: any value at that time)."""
    schema, base = user_schema(), at(-100)
    online_store.delete_group(schema)
    chunks = [writes[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads)

    def writer(chunk: list[tuple[int, int, int]]) -> None:
        barrier.wait()
        for entity, second, value in chunk:  # one write per row: maximal interleaving
            online_store.write(
                schema, user_rows(schema, [(entity, base + timedelta(seconds=second), value, None, None)])
            )

    workers = [threading.Thread(target=writer, args=(c,)) for c in chunks]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    newest: dict[int, int] = {}
    for entity, second, _ in writes:
        newest[entity] = max(newest.get(entity, -1), second)
    entities = sorted(newest)
    got = online_store.read(schema, [(e,) for e in entities], ["age"])
    for entity, row in zip(entities, got, strict=True):
        allowed = {v for e, s, v in writes if e == entity and s == newest[entity]}
        assert row is not None and row[0] in allowed, (entity, row, allowed)
