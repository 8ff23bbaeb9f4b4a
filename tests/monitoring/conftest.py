"""Fixtures of the monitoring tests: a file-backed registry, a monitor, frames, captured logs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from loguru import logger

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
from tauro_workbench.config import DriftConfig
from tauro_workbench.monitoring import EventBus, WriteMonitor
from tauro_workbench.registry import FeatureStoreMetadata

START = datetime(2026, 1, 1, tzinfo=UTC)


def transactions_schema(name: str = "transactions") -> FeatureGroupSchema:
    """Return a small group with numeric, categorical, boolean and array features."""
    return FeatureGroupSchema(
        name=name,
        entity_keys=["transaction_id"],
        timestamp_key="event_time",
        features=[
            FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("items", DataType.INT, FeatureType.NUMERICAL),
            FeatureSchema("channel", DataType.STRING, FeatureType.CATEGORICAL),
            FeatureSchema("is_fraud", DataType.BOOLEAN, FeatureType.CATEGORICAL),
            FeatureSchema("tags", "ARRAY<STRING>", FeatureType.COMPLEX),
        ],
    )


def transactions(
    n: int, *, seed: int, shift: float = 0.0, start: datetime = START, days: int = 28, offset: int = 0
) -> pl.DataFrame:
    """Return ``n`` synthetic transactions; ``shift`` moves amounts and the channel mix."""
    rng = np.random.default_rng(seed)
    channels = ["web", "store", "app"]
    mix = [0.5, 0.3, 0.2] if shift == 0 else [0.25, 0.25, 0.5]
    seconds = rng.integers(0, days * 86400, n)
    return pl.DataFrame(
        {
            "transaction_id": np.arange(offset, offset + n, dtype=np.int64),
            "event_time": [start + timedelta(seconds=int(s)) for s in seconds],
            "amount": rng.lognormal(3.0 + shift, 0.5, n),
            "items": rng.poisson(3 + 2 * shift, n).astype(np.int32),
            "channel": rng.choice(channels, n, p=mix),
            "is_fraud": rng.random(n) < 0.02,
            "tags": [["a"]] * n,
        },
        schema_overrides={"event_time": pl.Datetime("us", "UTC"), "tags": pl.List(pl.String)},
    )


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[FeatureStoreMetadata]:
    registry = FeatureStoreMetadata(tmp_path / "repo")
    yield registry
    registry.close()


@pytest.fixture
def schema(metadata: FeatureStoreMetadata) -> FeatureGroupSchema:
    group = transactions_schema()
    metadata.register_feature_group(group)
    return group


@pytest.fixture
def bus(metadata: FeatureStoreMetadata) -> EventBus:
    return EventBus(metadata)


@pytest.fixture
def monitor(metadata: FeatureStoreMetadata, bus: EventBus) -> WriteMonitor:
    return WriteMonitor(metadata, DriftConfig(), bus)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Capture the library's log records as ``"LEVEL message"`` lines."""
    lines: list[str] = []
    logger.enable("tauro_workbench")
    sink = logger.add(
        lambda m: lines.append(f"{m.record['level'].name} {m.record['message']}"), level="DEBUG"
    )
    yield lines
    logger.remove(sink)
    logger.disable("tauro_workbench")
