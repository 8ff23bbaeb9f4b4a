"""Online serving through MaterializedFeatureStore: sync on write, explicit syncs, reads, failures."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from redis.connection import Connection

from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureNotFoundError,
    OnlineStoreError,
    OnlineSyncError,
    PointInTimeError,
)
from tauro_workbench.monitoring.events import Promoted, SyncFailed
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.online_serving import SYNC_DOCUMENT
from tests.conftest import RedisServer
from tests.online.conftest import at, user_schema

ORDERS = FeatureGroupSchema(
    name="orders",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("total", "DECIMAL(10,2)"), FeatureSchema("last_day", "DATE")],
)


def make_store(
    tmp_path: Path, online: dict[str, Any] | None = None, **options: Any
) -> MaterializedFeatureStore:
    config = {
        "enable_online_store": True,
        "online_store": online or {"type": "memory"},
        "drift": {"enabled": False},
        "max_retries": 2,
        "retry_backoff_ms": 10,
        **options,
    }
    store = MaterializedFeatureStore(storage_path=tmp_path, config=config)
    store.register_features(user_schema())
    store.register_features(ORDERS)
    return store


def users(rows: list[tuple[int, float, int, float | None, str | None]]) -> pl.DataFrame:
    """Rows of ``(user_id, seconds from now, age, score, city)``."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "ts": [at(r[1]) for r in rows],
            "age": [r[2] for r in rows],
            "score": [r[3] for r in rows],
            "city": [r[4] for r in rows],
        },
        schema_overrides={"age": pl.Int32, "score": pl.Float64, "city": pl.String},
    )


@pytest.fixture(params=["memory", "redis"])
def synced(request: pytest.FixtureRequest, tmp_path: Path) -> MaterializedFeatureStore:
    """A store with sync_to_online over each backend."""
    online: dict[str, Any] = {"type": "memory"}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        online = {
            "type": "redis",
            "url": server.url,
            "key_prefix": f"t{abs(hash(str(tmp_path)))}",
            "batch_size": 2,
        }
    return make_store(tmp_path, online, sync_to_online=True)


def test_writes_sync_and_reads_return_typed_values(synced: MaterializedFeatureStore) -> None:
    record = synced.write_features(
        "user", users([(1, -30, 30, 0.3, "old"), (1, -10, 10, None, "new"), (2, -5, 20, 2.0, "b")])
    )
    synced.write_features(
        "orders",
        pl.DataFrame(
            {"user_id": [2], "ts": [at(-1)], "total": ["12.50"], "last_day": [date(2024, 1, 2)]}
        ).with_columns(pl.col("total").cast(pl.Decimal(10, 2))),
    )
    assert synced.metadata.list_writes("user")[-1].details["online"] == {
        "status": "ok",
        "entities": 2,
        "applied": 2,
    }
    assert record.rows == 3
    assert synced.get_online_features(["user.city", "score"], {"user_id": 1}) == {
        "city": "new",
        "score": None,
    }
    frame = synced.get_online_features(["orders.total", "user.age", "city"], {"user_id": [2, 3, 1]})
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["user_id", "total", "age", "city"]
    assert frame.schema["total"] == pl.Decimal(10, 2) and frame.schema["age"] == pl.Int32
    assert frame.rows() == [(2, pytest.approx(12.5), 20, "b"), (3, None, None, None), (1, None, 10, "new")]
    full = synced.get_online_features(
        ["user.age", "orders.last_day"], {"user_id": 2}, full_feature_names=True
    )
    assert full == {"user__age": 20, "orders__last_day": date(2024, 1, 2)}


def test_reads_name_the_wrong_feature_or_key(synced: MaterializedFeatureStore) -> None:
    with pytest.raises(FeatureNotFoundError, match="has no feature 'nope'"):
        synced.get_online_features(["user.nope"], {"user_id": 1})
    with pytest.raises(PointInTimeError, match="user_id"):
        synced.get_online_features(["user.age"], {"customer": 1})
    with pytest.raises(PointInTimeError, match="differ in length"):
        synced.get_online_features(["user.age"], {"user_id": [1, 2], "other": [1]})


def test_an_older_write_after_a_newer_one_keeps_the_newer_value(synced: MaterializedFeatureStore) -> None:
    synced.write_features("user", users([(1, -10, 10, 1.0, "new")]))
    synced.write_features("user", users([(1, -100, 99, 9.9, "late arrival")]))
    assert synced.get_online_features(["user.city"], {"user_id": 1}) == {"city": "new"}


def test_materialize_online_is_incremental_and_ranged_syncs_keep_the_watermark(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.write_features("user", users([(1, -50, 1, 0.1, "a"), (2, -40, 2, 0.2, "b")]))
    first = store.materialize_online("user")
    assert (first.rows, first.entities, first.full) == (2, 2, True)
    assert store.metadata.find_document(SYNC_DOCUMENT, "user")["status"] == "ok"  # type: ignore[index]
    store.write_features("user", users([(3, -30, 3, 0.3, "c")]))
    second = store.materialize_online("user")
    assert (second.rows, second.entities, second.full) == (1, 1, False)
    assert second.watermark is not None and first.watermark is not None and second.watermark > first.watermark
    assert store.materialize_online("user").rows == 0
    store.write_features("user", users([(4, -3600, 4, 0.4, "d"), (5, -5, 5, 0.5, "e")]))
    ranged = store.materialize_online("user", start=at(-7200), end=at(-600))
    assert (ranged.rows, ranged.watermark) == (1, None)
    assert store.get_online_features(["user.city"], {"user_id": [4, 5]}).get_column("city").to_list() == [
        "d",
        None,
    ]  # type: ignore[union-attr]
    assert store.materialize_online("user").rows == 2


def test_a_lost_online_copy_is_resynced_in_full(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.write_features("user", users([(1, -50, 1, 0.1, "a"), (2, -40, 2, 0.2, "b")]))
    store.materialize_online("user")
    store.online.delete_group(store.metadata.get_feature_group("user"))  # e.g. a flushed Redis
    report = store.materialize_online("user")
    assert (report.rows, report.full) == (2, True)
    assert store.get_online_features(["user.city"], {"user_id": 2}) == {"city": "b"}


def test_syncs_on_write_advance_a_contiguous_watermark(tmp_path: Path) -> None:
    store = make_store(tmp_path, sync_to_online=True)
    store.write_features("user", users([(1, -50, 1, 0.1, "a")]))
    store.materialize_online("user")
    store.write_features("user", users([(2, -40, 2, 0.2, "b")]))
    store.write_features("user", users([(3, -30, 3, 0.3, "c")]))
    assert store.materialize_online("user").rows == 0


def test_promote_to_online(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    seen: list[Any] = []
    store.events.subscribe(seen.append, kinds=["promoted"])
    store.write_features("user", users([(1, -50, 1, 0.1, "a")]))
    report = store.promote("user", to="online")
    assert report.entities == 1 and [(e.group, e.target, e.rows) for e in seen] == [("user", "online", 1)]
    assert isinstance(seen[0], Promoted)
    assert store.get_online_features(["age"], {"user_id": 1}) == {"age": 1}
    with pytest.raises(ConfigurationError, match="valid targets"):
        store.promote("user", to="somewhere")


def test_the_online_store_must_be_enabled(tmp_path: Path) -> None:
    store = MaterializedFeatureStore(storage_path=tmp_path)
    with pytest.raises(ConfigurationError, match="enable_online_store"):
        store.get_online_features(["user.age"], {"user_id": 1})


def test_redis_down_keeps_the_offline_write_and_a_rerun_completes_the_sync(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    store = make_store(
        tmp_path, {"type": "redis", "url": own_redis.url, "socket_timeout_seconds": 1}, sync_to_online=True
    )
    failures: list[Any] = []
    store.events.subscribe(failures.append, kinds=["sync_failed"])
    store.write_features("user", users([(1, -50, 1, 0.1, "a")]))
    store.materialize_online("user")
    own_redis.stop()
    with pytest.raises(OnlineStoreError, match="after 2 retries"):
        store.write_features("user", users([(1, -10, 2, 0.2, "newer"), (2, -10, 3, 0.3, "b")]))
    assert store.scan_group("user").collect().height == 3  # the offline write is kept
    assert store.metadata.list_writes("user")[-1].details["online"]["status"] == "failed"
    assert isinstance(failures[0], SyncFailed) and failures[0].group == "user"
    own_redis.start()  # empty: it runs without persistence
    report = store.materialize_online("user")
    assert (report.full, report.entities) == (True, 2)
    assert store.get_online_features(["city"], {"user_id": [1, 2]}).get_column("city").to_list() == [
        "newer",
        "b",
    ]  # type: ignore[union-attr]
    assert store.materialize_online("user").rows == 0


def test_a_restart_mid_sync_fails_and_the_rerun_completes(
    tmp_path: Path, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path, {"type": "redis", "url": own_redis.url, "batch_size": 3})
    store.write_features("user", users([(i, -50, i, 0.0, f"c{i}") for i in range(30)]))
    store.materialize_online("user")
    store.write_features("user", users([(i, -10, 100 + i, 1.0, f"n{i}") for i in range(30)]))
    original, calls = Connection.read_response, {"n": 0}

    def read_response(self: Connection, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:  # after the token check and a couple of batches
            own_redis.restart()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "read_response", read_response)
    with pytest.raises(OnlineSyncError, match="reset during the sync") as raised:
        store.materialize_online("user")
    monkeypatch.undo()
    partial = raised.value.report
    assert partial.status == "partial" and partial.entities == 30 and 0 < partial.missing <= 30
    document = store.metadata.find_document(SYNC_DOCUMENT, "user")
    assert document is not None and document["status"] == "partial" and document["seq"] is not None
    assert document["missing"] == partial.missing
    report = store.materialize_online("user")
    assert report.full and report.rows == 60 and report.entities == 30
    ages = store.get_online_features(["age"], {"user_id": list(range(30))}).get_column("age").to_list()  # type: ignore[union-attr]
    assert ages == [100 + i for i in range(30)]
