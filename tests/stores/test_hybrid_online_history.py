"""Reads of an online-only group: the online latest row per entity, joined as of.

An online-only group has no virtual definition and no offline rows (here: its Delta table is
deleted after the write synced it online). The hybrid router sends its historical reads online;
the result must equal the point-in-time oracle run over the latest row per entity only.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tauro_workbench.retrieval import plan_read
from tauro_workbench.stores.hybrid import HybridFeatureStore
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore
from tests.pit_oracle import oracle_latest, oracle_point_in_time

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = NOW - timedelta(days=2)  # every stored row stays live under the ttl, relative to now
TTL = timedelta(days=3)
SCORES = FeatureGroupSchema(
    "scores",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("score", "DOUBLE", "NUMERICAL")],
    ttl=TTL,
)


def build(root: Path, online: dict[str, Any] | None = None) -> HybridFeatureStore:
    config = {
        "storage_path": str(root / "repo"),
        "drift": {"enabled": False},
        "enable_online_store": True,
        "sync_to_online": True,
        "online_store": online or {"type": "memory"},
    }
    materialized = MaterializedFeatureStore(config=config)
    virtual = VirtualizedFeatureStore(
        config=config, metadata=materialized.metadata, events=materialized.events
    )
    hybrid = HybridFeatureStore(materialized, virtual)
    hybrid.register_features(SCORES)
    return hybrid


def drop_offline(hybrid: HybridFeatureStore) -> None:
    shutil.rmtree(hybrid.config.offline_path / "scores")


rows = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 36), st.floats(-5, 5, allow_nan=False)),
    min_size=1,
    max_size=12,
    unique_by=lambda r: (r[0], r[1]),  # one row per (entity, event time): no ties to break
)
entity_rows = st.lists(st.tuples(st.integers(0, 4), st.integers(-24, 24 * 8)), min_size=1, max_size=15)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, entities=entity_rows, instant=st.integers(-24, 24 * 8))
def test_online_only_history_matches_the_oracle_over_the_latest_rows(
    tmp_path_factory, rows: list[tuple[int, int, float]], entities: list[tuple[int, int]], instant: int
) -> None:
    hybrid = build(tmp_path_factory.mktemp("online_only"))
    features = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "ts": [BASE + timedelta(hours=r[1]) for r in rows],
            "score": [r[2] for r in rows],
        },
        schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "score": pl.Float64},
    )
    hybrid.write_features("scores", features)
    drop_offline(hybrid)
    entity = pl.DataFrame(
        {"user_id": [e[0] for e in entities], "at": [BASE + timedelta(hours=e[1]) for e in entities]},
        schema={"user_id": pl.Int64, "at": pl.Datetime("us", "UTC")},
    )
    route = hybrid.explain("scores.score", request="historical")
    assert route.target == "online" and "online-only" in route.reason

    got = hybrid.get_historical_features(entity, ["scores.score"]).collect()

    spec = plan_read(hybrid.metadata, ["scores.score"]).groups["scores"].pit_spec("at")
    assert spec is not None
    latest = oracle_latest(features, spec)
    assert_frame_equal(got, oracle_point_in_time(entity, latest, spec))
    assert hybrid.last_routes["scores"].target == "online"
    assert hybrid.metrics.snapshot()["reads"] == {"online": 1}

    # get_features naming its entities reads them online too, as of its instant
    ids = entity.select("user_id")
    at = BASE + timedelta(hours=instant)
    assert hybrid.explain("scores.score", ids, at).target == "online"
    expected = oracle_point_in_time(ids.with_columns(at=pl.lit(at)), latest, spec).drop("at")
    assert_frame_equal(hybrid.get_features(["scores.score"], ids, at).collect(), expected)
    hybrid.virtual.executor.close()


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_online_only_group_joins_with_a_materialized_group_in_one_call(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    online: dict[str, Any] = {"type": "memory"}
    if backend == "redis":  # the event times come back from a real redis-server
        online = {
            "type": "redis",
            "url": request.getfixturevalue("redis_server").url,
            "key_prefix": tmp_path.name,
        }
    hybrid = build(tmp_path, online)
    users = FeatureGroupSchema(
        "users",
        entity_keys=["user_id"],
        timestamp_key="ts",
        features=[FeatureSchema("age", "INT", "NUMERICAL")],
    )
    hybrid.register_features(users)
    hybrid.write_features(
        "users",
        pl.DataFrame({"user_id": [1, 2], "ts": [BASE, BASE], "age": pl.Series([30, 40], dtype=pl.Int32)}),
    )
    hybrid.write_features(
        "scores",
        pl.DataFrame(
            {"user_id": [1, 1, 2], "ts": [BASE, BASE + timedelta(hours=5), BASE], "score": [1.0, 2.0, 3.0]}
        ),
    )
    drop_offline(hybrid)
    entity = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3],
            "at": [BASE + timedelta(hours=1), BASE + timedelta(hours=6), BASE, BASE + TTL * 2, BASE],
        }
    )
    got = hybrid.get_historical_features(entity, ["users.age", "scores.score"]).collect()
    # user 1 at +1h: the latest online row (+5h) is later, and older rows are not kept -> null
    assert got["score"].to_list() == [None, 2.0, 3.0, None, None]
    assert got["age"].to_list() == [30, 30, 40, 40, None]
    assert got.columns == ["user_id", "at", "age", "score"]
    assert {g: r.target for g, r in hybrid.last_routes.items()} == {
        "users": "materialized",
        "scores": "online",
    }
    # a read of every entity cannot go online (the online store cannot list them)
    assert hybrid.explain("scores.score").target == "materialized"
    # naming the entities, latest values come from the online store, the other group offline
    ids = {"user_id": [1, 2, 3]}
    latest = hybrid.get_features(["users.age", "scores.score"], ids).collect()
    assert latest.rows() == [(1, 30, 2.0), (2, 40, 3.0), (3, None, None)]
    assert {g: r.target for g, r in hybrid.last_routes.items()} == {
        "users": "materialized",
        "scores": "online",
    }
    early = hybrid.get_features(["users.age", "scores.score"], ids, BASE + timedelta(hours=1)).collect()
    assert early.rows() == [(1, 30, None), (2, 40, 3.0), (3, None, None)]  # +5h row is later
    only = hybrid.get_features(["scores.score"], {"user_id": [2, 1]}).collect()
    assert only.rows() == [(2, 3.0), (1, 2.0)]
    hybrid.virtual.executor.close()
