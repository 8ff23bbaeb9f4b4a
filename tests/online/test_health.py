"""Health checks probe the online store; malformed Redis URLs are typed errors; unsynced reads warn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureStoreWarning,
    OnlineNotSyncedWarning,
    OnlineStoreError,
)
from tauro_workbench.online import InMemoryOnlineStore, OnlineStore, create_online_store
from tauro_workbench.online.redis import RedisOnlineStore, redact
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tests.conftest import RedisServer, free_port
from tests.online.conftest import at, user_schema


def make_store(tmp_path: Path, online: dict[str, Any] | None, **options: Any) -> MaterializedFeatureStore:
    config: dict[str, Any] = {
        "drift": {"enabled": False},
        "max_retries": 1,
        "retry_backoff_ms": 10,
        **options,
    }
    if online is not None:
        config.update(enable_online_store=True, online_store=online)
    store = MaterializedFeatureStore(storage_path=tmp_path, config=config)
    store.register_features(user_schema())
    return store


def users(ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ids,
            "ts": [at(-10)] * len(ids),
            "age": pl.Series(ids, dtype=pl.Int32),
            "score": [0.5] * len(ids),
            "city": ["x"] * len(ids),
        }
    )


def test_a_dead_redis_makes_the_store_unhealthy_naming_online(tmp_path: Path, own_redis: RedisServer) -> None:
    store = make_store(tmp_path, {"type": "redis", "url": own_redis.url, "socket_timeout_seconds": 1})
    report = store.health_check()
    assert report and report.checks["online"] is True and report.checks["offline_storage"] is True
    own_redis.stop()
    report = store.health_check()
    assert not report and report.checks["online"] is False
    assert report.checks["registry"] and report.checks["offline_storage"]
    assert "online" in repr(report) and "FAILED" in repr(report)
    assert f"Redis at {own_redis.url}" in report.details["online"]
    assert "Connection" in report.details["online"] or "connect" in report.details["online"].lower()
    own_redis.start()
    assert store.health_check()


def test_the_details_never_show_the_password(tmp_path: Path) -> None:
    url = f"redis://app:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    store = make_store(tmp_path, {"type": "redis", "url": url, "socket_timeout_seconds": 0.5})
    report = store.health_check()
    assert not report and "s3cret" not in report.details["online"]
    assert "redis://app:***@127.0.0.1" in report.details["online"]


def test_memory_store_is_healthy_and_stores_without_online_have_no_online_check(tmp_path: Path) -> None:
    assert make_store(tmp_path / "a", {"type": "memory"}).health_check().checks["online"] is True
    assert "online" not in make_store(tmp_path / "b", None).health_check().checks


def test_both_backends_implement_ping(own_redis: RedisServer) -> None:
    memory = InMemoryOnlineStore()
    redis_store = RedisOnlineStore(own_redis.url, max_retries=0, socket_timeout_seconds=1)
    assert isinstance(memory, OnlineStore) and isinstance(redis_store, OnlineStore)
    memory.ping()
    redis_store.ping()
    own_redis.stop()
    with pytest.raises(OnlineStoreError, match="does not answer PING"):
        redis_store.ping()
    assert not redis_store.health_check()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://app:s3cret@cache.internal:notaport/0", "Port could not be cast"),
        ("http://cache.internal:6379/0", "scheme is 'http'"),
        ("redis://cache.internal:6379/first", "database 'first' is not a number"),
        ("redis://:6379/0", "no host"),
    ],
)
def test_a_malformed_url_is_a_configuration_error_naming_the_redacted_url(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a Redis URL") as raised:
        RedisOnlineStore(url)
    message = str(raised.value)
    assert problem in message and "redis://host:port/db" in message and "s3cret" not in message
    assert redact(url) in message
    config = FeatureStoreConfig(online_store={"type": "redis", "url": url})
    with pytest.raises(ConfigurationError, match="is not a Redis URL"):
        create_online_store(config)


def test_redact_hides_the_password_of_a_malformed_url() -> None:
    assert redact("redis://app:s3cret@host:notaport/0") == "redis://***@host:notaport/0"
    assert redact("redis://app:s3cret@host:6379/0") == "redis://app:***@host:6379/0"


def test_reading_a_group_never_synced_warns_how_to_sync_it(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"type": "memory"})
    store.write_features("user", users([1, 2]))
    assert issubclass(OnlineNotSyncedWarning, FeatureStoreWarning) and issubclass(
        FeatureStoreWarning, UserWarning
    )
    with pytest.warns(
        OnlineNotSyncedWarning, match=r"never synced.*promote\('user', to='online'\).*materialize_online"
    ):
        assert store.get_online_features(["age"], {"user_id": 1}) == {"age": None}
    store.promote("user", to="online")
    # synced: no warning (warnings are errors in this test suite), even for a missing entity
    assert store.get_online_features(["age"], {"user_id": 1}) == {"age": 1}
    frame = store.get_online_features(["age"], {"user_id": [7, 8]})
    assert isinstance(frame, pl.DataFrame) and frame.get_column("age").to_list() == [None, None]


def test_a_batch_read_of_a_never_synced_group_warns(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"type": "memory"})
    with pytest.warns(OnlineNotSyncedWarning, match="never synced"):
        frame = store.get_online_features(["age", "city"], {"user_id": [1, 2]})
    assert isinstance(frame, pl.DataFrame) and frame.null_count().row(0) == (0, 2, 2)


def test_a_lost_online_copy_warns_differently(tmp_path: Path, redis_server: RedisServer) -> None:
    store = make_store(tmp_path, {"type": "redis", "url": redis_server.url, "key_prefix": "lost"})
    store.write_features("user", users([1]))
    store.materialize_online("user")
    online = store.online
    assert isinstance(online, RedisOnlineStore)
    online.delete_group(user_schema())  # what a flush or a restart without persistence does
    with pytest.warns(OnlineNotSyncedWarning, match="online copy is gone"):
        assert store.get_online_features(["age"], {"user_id": 1}) == {"age": None}
    assert store.materialize_online("user").full
    assert store.get_online_features(["age"], {"user_id": 1}) == {"age": 1}


def test_an_in_memory_copy_synced_by_another_process_says_it_lives_in_one_process(tmp_path: Path) -> None:
    writer = make_store(tmp_path, {"type": "memory"})
    writer.write_features("user", users([1]))
    writer.promote("user", to="online")
    reader = make_store(tmp_path, {"type": "memory"})  # what a second process (the CLI) gets
    with pytest.warns(OnlineNotSyncedWarning, match=r"in-memory online store lives in one process.*redis"):
        assert reader.get_online_features(["age"], {"user_id": 1}) == {"age": None}
