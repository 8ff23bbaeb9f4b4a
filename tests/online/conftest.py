"""Fixtures of the online-store tests: both backends over a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tauro_workbench.online import InMemoryOnlineStore, OnlineStore
from tauro_workbench.online.redis import RedisOnlineStore
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tests.conftest import RedisServer


def make_store(kind: str, url: str | None = None, **options: object) -> OnlineStore:
    """Return a fresh store of ``kind`` (a Redis one on ``url``, flushed)."""
    if kind == "memory":
        return InMemoryOnlineStore()
    assert url is not None
    store = RedisOnlineStore(url, **options)  # type: ignore[arg-type]
    store.client.flushdb()
    return store


@pytest.fixture(params=["memory", "redis"])
def online_store(request: pytest.FixtureRequest) -> Iterator[OnlineStore]:
    """Each backend in turn; the Redis one on the session server, flushed first."""
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    store = make_store(request.param, url)
    yield store
    store.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that a test may stop and start (the session one stays up)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def user_schema(*, ttl: Any = None, timestamp: bool = True, created: bool = False) -> FeatureGroupSchema:
    """A small group: user_id -> age (INT), score (DOUBLE), city (STRING)."""
    return FeatureGroupSchema(
        name="user",
        entity_keys=["user_id"],
        timestamp_key="ts" if timestamp else None,
        created_timestamp_key="created" if created else None,
        ttl=ttl,
        features=[
            FeatureSchema("age", "INT"),
            FeatureSchema("score", "DOUBLE"),
            FeatureSchema("city", "STRING"),
        ],
    )


def user_rows(schema: FeatureGroupSchema, rows: Sequence[tuple[object, ...]]) -> pl.DataFrame:
    """Build a validated frame of ``(user_id, [ts], [created], age, score, city)`` tuples."""
    columns = schema.columns
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    return schema.validate(
        pl.DataFrame(data, schema={c: schema.polars_schema().get(c, pl.Int64) for c in columns})
    )


def at(seconds: float) -> datetime:
    """Return the current UTC time plus ``seconds``."""
    return datetime.now(UTC) + timedelta(seconds=seconds)
