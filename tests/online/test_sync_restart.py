"""Sync on write across a real Redis restart: reported as partial with counts, completed later.

The server is a real redis-server without persistence, restarted under the writer; the only
hook is on the client's reply reading, to time the restart in the middle of the batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from redis.connection import Connection

from tauro_workbench.exceptions import OnlineSyncError
from tauro_workbench.monitoring.events import SyncFailed
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.online_serving import SYNC_DOCUMENT
from tests.conftest import RedisServer
from tests.online.conftest import at, user_schema

N = 2_000


def make_store(tmp_path: Path, server: RedisServer) -> MaterializedFeatureStore:
    store = MaterializedFeatureStore(
        storage_path=tmp_path,
        config={
            "enable_online_store": True,
            "sync_to_online": True,
            "online_store": {
                "type": "redis",
                "url": server.url,
                "batch_size": 100,
                "socket_timeout_seconds": 2,
            },
            "drift": {"enabled": False},
            "max_retries": 3,
            "retry_backoff_ms": 50,
        },
    )
    store.register_features(user_schema())
    return store


def users(ids: range, *, age: int, seconds: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": list(ids),
            "ts": [at(seconds)] * len(ids),
            "age": [age] * len(ids),
            "score": [0.5] * len(ids),
            "city": ["x"] * len(ids),
        },
        schema_overrides={"age": pl.Int32},
    )


def restart_after(server: RedisServer, monkeypatch: pytest.MonkeyPatch, replies: int) -> None:
    """Restart the real server once, when the client has read ``replies`` replies."""
    original, calls = Connection.read_response, {"n": 0}

    def read_response(self: Connection, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == replies:
            server.restart()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "read_response", read_response)


def ages(store: MaterializedFeatureStore, ids: range) -> list[int | None]:
    frame = store.get_online_features(["age"], {"user_id": list(ids)})
    assert isinstance(frame, pl.DataFrame)
    return frame.get_column("age").to_list()


def test_a_restart_mid_sync_on_write_is_reported_partial_and_a_later_sync_completes_it(
    tmp_path: Path, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path, own_redis)
    store.write_features("user", users(range(N), age=1, seconds=-60))
    assert store.materialize_online("user").full  # the first explicit sync sets the watermark
    failures: list[Any] = []
    store.events.subscribe(failures.append, kinds=["sync_failed"])

    restart_after(own_redis, monkeypatch, replies=8)  # token, then a few of the 20 batches
    with pytest.raises(OnlineSyncError, match="reset during the sync") as raised:
        store.write_features("user", users(range(N), age=2, seconds=-10))
    monkeypatch.undo()

    report = raised.value.report
    assert report.status == "partial" and report.entities == N
    # what the restart wiped: every batch acknowledged before it (at least one, not all)
    present = sum(a is not None for a in ages(store, range(N)))
    assert report.missing == N - present and 0 < report.missing < N
    online = store.metadata.list_writes("user")[-1].details["online"]
    assert online["status"] == "partial" and online["missing"] == report.missing
    assert online["entities"] == N and "reset during the sync" in online["error"]
    assert isinstance(failures[-1], SyncFailed) and failures[-1].rows_synced == N - report.missing
    assert store.scan_group("user").collect().height == 2 * N  # the offline write is kept

    completed = store.materialize_online("user")  # the token is gone: a full resync
    assert completed.full and completed.status == "ok" and completed.entities == N
    assert ages(store, range(N)) == [2] * N
    document = store.metadata.find_document(SYNC_DOCUMENT, "user")
    assert document is not None and document["status"] == "ok"
    assert store.materialize_online("user").rows == 0


def test_a_server_down_during_sync_on_write_is_reported_failed(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    store = make_store(tmp_path, own_redis)
    store.write_features("user", users(range(10), age=1, seconds=-60))
    own_redis.stop()
    with pytest.raises(OnlineSyncError, match="after 3 retries") as raised:
        store.write_features("user", users(range(10), age=2, seconds=-10))
    assert raised.value.report.status == "failed" and raised.value.report.missing is None
    assert store.metadata.list_writes("user")[-1].details["online"]["status"] == "failed"
    own_redis.start()  # empty: no persistence
    assert store.materialize_online("user").full
    assert ages(store, range(10)) == [2] * 10


def test_a_restart_before_a_sync_on_write_leaves_the_next_sync_full(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    store = make_store(tmp_path, own_redis)
    store.write_features("user", users(range(10), age=1, seconds=-60))
    store.materialize_online("user")
    own_redis.restart()  # everything online is gone
    store.write_features("user", users(range(5), age=2, seconds=-10))  # these 5 land
    assert store.metadata.list_writes("user")[-1].details["online"]["status"] == "ok"
    assert ages(store, range(10)) == [2] * 5 + [None] * 5
    report = store.materialize_online("user")  # the registry's token no longer matches
    assert report.full and ages(store, range(10)) == [2] * 5 + [1] * 5


def test_an_explicit_sync_with_the_server_down_is_reported_failed(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    store = make_store(tmp_path, own_redis)
    store.write_features("user", users(range(10), age=1, seconds=-60))
    own_redis.stop()
    with pytest.raises(OnlineSyncError, match="after 3 retries") as raised:
        store.materialize_online("user")
    assert raised.value.report.status == "failed"
    own_redis.start()
    report = store.materialize_online("user")
    assert report.full and report.status == "ok" and ages(store, range(10)) == [1] * 10
