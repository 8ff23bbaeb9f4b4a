"""Fixtures of the materialized-store tests: stores on real Delta/Parquet tables in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pytest

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
from tauro_workbench.stores.materialized import MaterializedFeatureStore

UTC = UTC
T0 = datetime(2024, 1, 1, tzinfo=UTC)

StoreFactory = Callable[..., MaterializedFeatureStore]


def day(n: float) -> datetime:
    """Return T0 plus ``n`` days (UTC)."""
    return T0 + timedelta(days=n)


def users_schema(**changes: Any) -> FeatureGroupSchema:
    """A group keyed by user_id with an event time, an int and a string feature."""
    options: dict[str, Any] = {
        "name": "users",
        "entity_keys": ["user_id"],
        "timestamp_key": "ts",
        "features": [FeatureSchema("age", DataType.INT), FeatureSchema("city", DataType.STRING)],
    }
    options.update(changes)
    return FeatureGroupSchema(**options)


def orders_schema() -> FeatureGroupSchema:
    """A group with a composite key (user_id, shop) and a created time."""
    return FeatureGroupSchema(
        name="orders",
        entity_keys=["user_id", "shop"],
        timestamp_key="ts",
        created_timestamp_key="created",
        features=[FeatureSchema("spend", DataType.DOUBLE)],
    )


def users_frame(ids: list[int], days: list[float], ages: list[int]) -> pl.DataFrame:
    """Rows of the users group (cities derived from the ages)."""
    return pl.DataFrame(
        {
            "user_id": ids,
            "ts": [day(d) for d in days],
            "age": pl.Series(ages, dtype=pl.Int32),
            "city": [f"c{a}" for a in ages],
        }
    )


@pytest.fixture
def make_store(tmp_path: Path) -> StoreFactory:
    """Build stores under tmp_path; drift profiling off unless asked (it has its own tests)."""

    def build(
        storage_format: Literal["delta", "parquet"] = "delta", *, root: Path | None = None, **options: Any
    ) -> MaterializedFeatureStore:
        options.setdefault("drift", {"enabled": False})
        return MaterializedFeatureStore(
            storage_path=root or tmp_path / "repo",
            storage_format=storage_format,
            config=options,  # type: ignore[arg-type]
        )

    return build


@pytest.fixture(params=["delta", "parquet"])
def store(request: pytest.FixtureRequest, make_store: StoreFactory) -> MaterializedFeatureStore:
    """A store with the users group registered, in each storage format."""
    built = make_store(request.param)
    built.register_features(users_schema())
    return built


@pytest.fixture
def delta_store(make_store: StoreFactory) -> MaterializedFeatureStore:
    """A Delta store with the users and orders groups registered."""
    built = make_store("delta")
    built.register_features(users_schema())
    built.register_features(orders_schema())
    return built
