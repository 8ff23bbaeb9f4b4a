"""One contract suite run against every store: materialized, virtual and hybrid.

The hybrid store runs in three set-ups: every group read virtually (threshold above the data),
every group read from its materialized copy (threshold 0), and a request mixing a stored group
with a virtual one. Expected rows come from the brute-force oracle (tests/pit_oracle.py), so
every store is held to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tauro_workbench.engines.pit import PointInTimeSpec
from tauro_workbench.exceptions import FeatureGroupNotFoundError, FeatureNotFoundError, PointInTimeError
from tauro_workbench.monitoring.events import GroupRegistered
from tauro_workbench.stores.base import BaseFeatureStore
from tauro_workbench.stores.hybrid import HybridFeatureStore
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore
from tests.pit_oracle import oracle_latest, oracle_point_in_time

T0 = datetime(2024, 1, 1, tzinfo=UTC)
KINDS = ["materialized", "virtual", "hybrid_virtual", "hybrid_materialized", "hybrid_mixed"]


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


USERS_SCHEMA = FeatureGroupSchema(
    "users",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("age", "INT", "NUMERICAL"), FeatureSchema("city", "STRING", "CATEGORICAL")],
)
SPEND_SCHEMA = FeatureGroupSchema(
    "spend",
    entity_keys=["user_id"],
    timestamp_key="ts",
    ttl=timedelta(days=3),
    features=[FeatureSchema("amount", "DOUBLE", "NUMERICAL")],
)
USERS = pl.DataFrame(
    {
        "user_id": [1, 1, 2, 3, 3, 4],
        "ts": [day(0), day(4), day(1), day(2), day(6), day(9)],
        "age": pl.Series([30, 31, 40, 50, None], dtype=pl.Int32).extend(pl.Series([60], dtype=pl.Int32)),
        "city": ["a", "b", None, "c", "d", "e"],
    }
)
SPEND = pl.DataFrame(
    {
        "user_id": [1, 1, 2, 3, 3],
        "ts": [day(0), day(2), day(1), day(4), day(9)],
        "amount": [1.0, 2.0, 3.0, None, 5.0],
    }
)
USERS_SQL = "SELECT user_id, ts, age, city FROM silver.users"
SPEND_SQL = "SELECT user_id, ts, amount FROM silver.spend"


def spec(schema: FeatureGroupSchema, entity_time: str = "t", *, full: bool = False) -> PointInTimeSpec:
    features = tuple(schema.feature_names)
    return PointInTimeSpec(
        entity_keys=tuple(schema.entity_keys),
        entity_time=entity_time,
        event_time="ts",
        feature_columns=features,
        output_names=tuple(f"{schema.name}__{f}" for f in features) if full else features,
        ttl=schema.ttl,
    )


def build(kind: str, root: Path) -> tuple[BaseFeatureStore, list[Any]]:
    """Return a store of ``kind`` holding the users and spend groups, and what must be closed."""
    USERS.write_parquet(root / "users.parquet")
    SPEND.write_parquet(root / "spend.parquet")
    config: dict[str, Any] = {"storage_path": str(root / "repo"), "drift": {"enabled": False}}
    context = {
        "sources": {"silver.users": str(root / "users.parquet"), "silver.spend": str(root / "spend.parquet")}
    }
    if kind == "hybrid_materialized":
        config["hybrid_threshold_rows"] = 0
    materialized = MaterializedFeatureStore(config=config)
    virtual = VirtualizedFeatureStore(
        context, config=config, metadata=materialized.metadata, events=materialized.events
    )
    for schema in (USERS_SCHEMA, SPEND_SCHEMA):
        materialized.register_features(schema)
    if kind == "materialized":
        materialized.write_features("users", USERS)
        materialized.write_features("spend", SPEND)
        return materialized, [virtual.executor]
    if kind == "hybrid_mixed":
        materialized.write_features("users", USERS)  # stored data, no virtual definition
        virtual.define_virtual_features("spend", SPEND_SQL)  # virtual, never materialized
    else:
        virtual.define_virtual_features("users", USERS_SQL)
        virtual.define_virtual_features("spend", SPEND_SQL)
    if kind == "virtual":
        return virtual, [virtual.executor]
    hybrid = HybridFeatureStore(materialized, virtual)
    if kind in ("hybrid_virtual", "hybrid_materialized"):
        hybrid.materialize("users")
        hybrid.materialize("spend")
    return hybrid, [hybrid, virtual.executor]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseFeatureStore]:
    built, owned = build(request.param, tmp_path)
    yield built
    for item in owned:
        item.close()


def expected_targets(store: BaseFeatureStore) -> set[str]:
    assert isinstance(store, HybridFeatureStore)
    routes = store.explain(["users.age", "spend.amount"])
    assert isinstance(routes, dict)
    return {r.target for r in routes.values()}


def test_hybrid_set_ups_route_as_intended(tmp_path: Path) -> None:
    for kind, targets in [
        ("hybrid_virtual", {"virtual"}),
        ("hybrid_materialized", {"materialized"}),
        ("hybrid_mixed", {"virtual", "materialized"}),
    ]:
        (tmp_path / kind).mkdir()
        built, owned = build(kind, tmp_path / kind)
        assert expected_targets(built) == targets, kind
        for item in owned:
            item.close()


def test_register_is_idempotent(store: BaseFeatureStore) -> None:
    seen: list[Any] = []
    store.events.subscribe(seen.append, kinds=[GroupRegistered.kind])
    assert store.register_features(USERS_SCHEMA) == USERS_SCHEMA
    assert seen == []
    new = FeatureGroupSchema(
        "extra", entity_keys=["user_id"], timestamp_key="ts", features=[FeatureSchema("x", "INT")]
    )
    store.register_features(new)
    assert [e.group for e in seen] == ["extra"]
    assert store.metadata.get_feature_group("extra") == new


def test_latest_every_entity(store: BaseFeatureStore) -> None:
    out = store.get_features(["users.age", "users.city"]).collect()
    expected = oracle_latest(USERS, spec(USERS_SCHEMA, "ts")).drop("ts")
    assert_frame_equal(out, expected)


def test_latest_of_requested_entities_in_order(store: BaseFeatureStore) -> None:
    ids = {"user_id": [3, 1, 9, 1]}
    out = store.get_features(["age", "city"], entity_ids=ids).collect()
    entities = pl.DataFrame(ids)
    expected = oracle_latest(USERS, spec(USERS_SCHEMA, "ts"), entities=entities).drop("ts")
    assert_frame_equal(out, expected)


def test_point_in_time_with_ttl(store: BaseFeatureStore) -> None:
    when = day(5)
    entities = pl.DataFrame({"user_id": [1, 2, 3, 7]})
    out = store.get_features(["spend.amount"], entity_ids=entities, point_in_time=when).collect()
    expected = oracle_latest(SPEND, spec(SPEND_SCHEMA, "ts"), as_of=when, entities=entities).drop("ts")
    assert_frame_equal(out, expected)
    every = store.get_features(["spend.amount"], point_in_time=when).collect()
    live = oracle_latest(SPEND, spec(SPEND_SCHEMA, "ts"), as_of=when).filter(pl.col("ts").is_not_null())
    assert_frame_equal(every, live.drop("ts"))  # only entities with a live value


def test_latest_over_two_groups(store: BaseFeatureStore) -> None:
    when = day(5)
    entities = pl.DataFrame({"user_id": [2, 1, 3, 8]})
    out = store.get_features(["users.age", "spend.amount"], entity_ids=entities, point_in_time=when).collect()
    users = oracle_latest(USERS, spec(USERS_SCHEMA, "ts"), as_of=when, entities=entities)
    spend = oracle_latest(SPEND, spec(SPEND_SCHEMA, "ts"), as_of=when, entities=entities)
    assert_frame_equal(out, entities.with_columns(users["age"], spend["amount"]))
    every = store.get_features(["users.age", "spend.amount"], point_in_time=when).collect()
    u = oracle_latest(USERS, spec(USERS_SCHEMA, "ts"), as_of=when).select("user_id", "age")
    s = (
        oracle_latest(SPEND, spec(SPEND_SCHEMA, "ts"), as_of=when)
        .filter(pl.col("ts").is_not_null())
        .drop("ts")
    )
    assert_frame_equal(every, u.join(s, on="user_id", how="full", coalesce=True).sort("user_id"))


@pytest.mark.parametrize("full", [False, True])
def test_historical_matches_the_oracle(store: BaseFeatureStore, full: bool) -> None:
    entity = pl.DataFrame(
        {
            "user_id": [1, 3, 3, 2, 5, 1],
            "t": [day(1), day(5), day(9.5), day(0), day(3), day(4)],
            "label": [0, 1, 0, 1, 1, 0],
        }
    )
    out = store.get_historical_features(
        entity, ["users.age", "users.city", "spend.amount"], full_feature_names=full
    ).collect()
    expected = oracle_point_in_time(
        oracle_point_in_time(entity, USERS, spec(USERS_SCHEMA, full=full)),
        SPEND,
        spec(SPEND_SCHEMA, full=full),
    )
    assert_frame_equal(out, expected)


def test_health_check(store: BaseFeatureStore) -> None:
    report = store.health_check()
    assert report and report.checks["registry"]
    assert all(report.checks.values()) and not report.details


def test_unknown_names_raise_typed_errors(store: BaseFeatureStore) -> None:
    with pytest.raises(FeatureNotFoundError, match="nope"):
        store.get_features(["nope"])
    with pytest.raises(FeatureNotFoundError, match=r"users\.age"):  # the candidates are listed
        store.get_features(["users.nope"])
    with pytest.raises(FeatureGroupNotFoundError, match="ghost"):
        store.get_features(["ghost.age"])
    with pytest.raises(PointInTimeError, match="user_id"):
        store.get_historical_features(pl.DataFrame({"t": [T0]}), ["users.age"])
