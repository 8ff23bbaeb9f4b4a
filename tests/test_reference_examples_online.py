"""The online example of the reference Tauro README, run as written (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tauro_workbench import (
    DataType,
    FeatureGroupSchema,
    FeatureSchema,
    FeatureStoreConfig,
    FeatureType,
    MaterializedFeatureStore,
)
from tauro_workbench.config import OnlineStoreConfig


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_real_time_enrichment(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    online: dict[str, Any] = {"type": "memory"}
    if backend == "redis":
        online = {"type": "redis", "url": request.getfixturevalue("redis_server").url, "key_prefix": "readme"}
    config = FeatureStoreConfig(
        storage_path=str(tmp_path),
        enable_online_store=True,
        online_store=OnlineStoreConfig(**online),
        sync_to_online=True,
    )
    store = MaterializedFeatureStore(config=config)
    store.register_features(
        FeatureGroupSchema(
            name="user",
            entity_keys=["user_id"],
            timestamp_key="event_time",
            features=[FeatureSchema("last_login", DataType.TIMESTAMP, FeatureType.TIMESERIES)],
        )
    )
    login = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    store.write_features(
        "user",
        pl.DataFrame(
            {"user_id": ["user_123", "user_456"], "event_time": [login, login], "last_login": [login, None]}
        ),
    )

    # Real-time enrichment
    online_features = store.get_online_features(
        feature_names=["user.last_login"], entity_keys={"user_id": "user_123"}
    )

    assert online_features == {"last_login": login}
    assert store.get_online_features(["user.last_login"], {"user_id": "nobody"}) == {"last_login": None}
