"""End to end: the hybrid store on real Delta tables, Parquet sources and DuckDB.

The same request switches route when the threshold or the freshness changes, and the rows are
identical on every route; a training set mixes a stored and a virtual group; route changes are
published; auto-materialization runs off the read path with a cool-down.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tauro_workbench.exceptions import ConfigurationError, PointInTimeError
from tauro_workbench.monitoring.events import RouteChanged
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.stores.hybrid import HybridFeatureStore
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.routing import Route, RouteFacts
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SPEND_SCHEMA = FeatureGroupSchema(
    "spend",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("amount", "DOUBLE", "NUMERICAL")],
)
USERS_SCHEMA = FeatureGroupSchema(
    "users",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("age", "INT", "NUMERICAL")],
)
SPEND = pl.DataFrame(
    {
        "user_id": [1, 1, 2, 3, 3],
        "ts": [T0, T0 + timedelta(days=2), T0 + timedelta(days=1), T0, T0 + timedelta(days=3)],
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
    }
)
USERS = pl.DataFrame(
    {"user_id": [1, 2, 3], "ts": [T0, T0, T0], "age": pl.Series([30, 40, 50], dtype=pl.Int32)}
)
IDS = {"user_id": [3, 1, 2, 9]}


class Clock:
    """A settable clock: the real time plus an offset."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Repo:
    root: Path
    materialized: MaterializedFeatureStore
    virtual: VirtualizedFeatureStore
    hybrid: HybridFeatureStore
    clock: Clock

    def routes(self) -> list[tuple[str | None, str | None, str]]:
        return [
            (e.group, e.previous, e.route)
            for e in self.hybrid.events.history(kind=RouteChanged.kind)
            if isinstance(e, RouteChanged)
        ]

    def write_source(self, frame: pl.DataFrame) -> None:
        frame.write_parquet(self.root / "spend.parquet")


def make_repo(root: Path, *, spend: pl.DataFrame = SPEND, **options: Any) -> Repo:
    spend.write_parquet(root / "spend.parquet")
    config: dict[str, Any] = {"storage_path": str(root / "repo"), "drift": {"enabled": False}, **options}
    materialized = MaterializedFeatureStore(config=config)
    virtual = VirtualizedFeatureStore(
        {"sources": {"silver.spend": str(root / "spend.parquet")}},
        config=config,
        metadata=materialized.metadata,
        events=materialized.events,
    )
    clock = Clock()
    hybrid = HybridFeatureStore(materialized, virtual, clock=clock)
    hybrid.register_features(SPEND_SCHEMA)
    hybrid.register_features(USERS_SCHEMA)
    virtual.define_virtual_features("spend", "SELECT user_id, ts, amount FROM silver.spend")
    return Repo(root, materialized, virtual, hybrid, clock)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    built = make_repo(tmp_path)
    yield built
    built.hybrid.close()
    built.virtual.executor.close()


def route_of(repo: Repo, names: list[str] | str = "spend.amount", **kwargs: Any) -> Route:
    route = repo.hybrid.explain(names, **kwargs)
    assert isinstance(route, Route)
    return route


def set_threshold(repo: Repo, rows: int) -> None:
    repo.hybrid.config = repo.hybrid.config.with_options(hybrid_threshold_rows=rows)


def test_threshold_switches_the_route_and_the_rows_stay_the_same(repo: Repo) -> None:
    repo.hybrid.materialize("spend")
    assert route_of(repo).target == "virtual"  # 5 rows <= 100 000
    on_virtual = repo.hybrid.get_features("spend.amount", entity_ids=IDS).collect()
    set_threshold(repo, 4)
    route = route_of(repo)
    assert route.target == "materialized" and route.reasons == (
        "~5 rows > hybrid_threshold_rows=4: reading the materialized copy",
    )
    on_materialized = repo.hybrid.get_features("spend.amount", entity_ids=IDS).collect()
    assert_frame_equal(on_virtual, on_materialized)
    assert_frame_equal(on_virtual, repo.virtual.get_features("spend.amount", entity_ids=IDS).collect())
    assert on_virtual["amount"].to_list() == [5.0, 2.0, 3.0, None]
    set_threshold(repo, 5)  # back at the threshold: on demand again
    repo.hybrid.get_features("spend.amount", entity_ids=IDS).collect()
    assert repo.routes() == [
        ("spend", None, "virtual"),
        ("spend", "virtual", "materialized"),
        ("spend", "materialized", "virtual"),
    ]
    groups = repo.hybrid.metrics.snapshot()["groups"]["spend"]
    assert groups["virtual"]["reads"] == 2 and groups["materialized"]["reads"] == 1
    assert repo.hybrid.metrics.snapshot()["route_changes"] == 3


def test_freshness_switches_the_route(repo: Repo) -> None:
    repo.hybrid.config = repo.hybrid.config.with_options(
        hybrid_threshold_rows=0, hybrid={"freshness": {"spend": "1h"}}
    )
    repo.hybrid.materialize("spend")
    assert route_of(repo).target == "materialized"
    before = repo.hybrid.get_features("spend.amount").collect()
    time.sleep(0.01)
    newer = pl.concat(
        [SPEND, pl.DataFrame({"user_id": [2], "ts": [T0 + timedelta(days=5)], "amount": [9.0]})]
    )
    repo.write_source(newer)
    repo.clock.offset = timedelta(minutes=30)  # sources changed, but the copy is within 1h
    route = route_of(repo)
    assert route.target == "materialized"
    assert route.reasons[0] == "the materialized copy of 'spend' meets its freshness requirement of 1h"
    assert_frame_equal(repo.hybrid.get_features("spend.amount").collect(), before)
    repo.clock.offset = timedelta(hours=2)
    route = route_of(repo)
    assert route.target == "virtual" and "more than its freshness requirement of 1h" in route.reasons[0]
    fresh = repo.hybrid.get_features("spend.amount").collect()
    assert fresh.filter(pl.col("user_id") == 2)["amount"].to_list() == [9.0]
    assert_frame_equal(fresh, repo.virtual.get_features("spend.amount").collect())
    repo.hybrid.materialize("spend")  # a new copy: fresh again
    assert route_of(repo).target == "materialized"
    assert_frame_equal(repo.hybrid.get_features("spend.amount").collect(), fresh)
    assert [r[2] for r in repo.routes()] == ["materialized", "virtual", "materialized"]


def test_freshness_from_a_group_tag_and_the_default(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, hybrid_threshold_rows=0, hybrid={"default_freshness": "10m"})
    tagged = FeatureGroupSchema(
        "spend", version=2, entity_keys=["user_id"], timestamp_key="ts", tags={"freshness": "3h"},
        features=[FeatureSchema("amount", "DOUBLE", "NUMERICAL")],
    )  # fmt: skip
    assert route_of(repo).facts.freshness_requirement == timedelta(minutes=10)
    repo.hybrid.register_features(tagged)
    assert route_of(repo).facts.freshness_requirement == timedelta(hours=3)
    broken = FeatureGroupSchema(
        "spend", version=3, entity_keys=["user_id"], timestamp_key="ts", tags={"freshness": "soon"},
        features=[FeatureSchema("amount", "DOUBLE", "NUMERICAL")],
    )  # fmt: skip
    repo.hybrid.register_features(broken)
    with pytest.raises(ConfigurationError, match="tag freshness='soon' is not a duration"):
        route_of(repo)
    repo.virtual.executor.close()


def test_training_set_over_a_stored_and_a_virtual_group(repo: Repo) -> None:
    repo.hybrid.write_features("users", USERS)
    routes = repo.hybrid.explain(["users.age", "spend.amount"], request="historical")
    assert isinstance(routes, dict)
    assert {g: r.target for g, r in routes.items()} == {"users": "materialized", "spend": "virtual"}
    entity = pl.DataFrame(
        {"user_id": [1, 3, 2, 7], "t": [T0 + timedelta(days=d) for d in (1, 2, 0, 1)], "label": [1, 0, 1, 0]}
    )
    out = repo.hybrid.get_historical_features(entity, ["age", "amount"]).collect()
    assert {g: r.target for g, r in repo.hybrid.last_routes.items()} == {
        "users": "materialized",
        "spend": "virtual",
    }
    users = repo.materialized.get_historical_features(entity, ["users.age"]).collect()
    expected = repo.virtual.get_historical_features(users, ["spend.amount"], timestamp_column="t").collect()
    assert_frame_equal(out, expected)
    assert out["age"].to_list() == [30, 50, 40, None] and out["amount"].to_list() == [1.0, 4.0, None, None]
    latest = repo.hybrid.get_features(["age", "amount"], entity_ids=IDS).collect()
    assert latest.rows() == [(3, 50, 5.0), (1, 30, 2.0), (2, 40, 3.0), (9, None, None)]
    with pytest.raises(PointInTimeError, match="user_id"):
        repo.hybrid.get_historical_features(entity.drop("user_id"), ["age", "amount"])


def test_explain_reads_nothing_and_validates(repo: Repo) -> None:
    route = route_of(repo)
    assert route.policy == "default" and route.facts.estimated_rows == 5 and not route.facts.materialized
    assert route.facts.latency_seconds == {}
    assert repo.routes() == [] and repo.hybrid.metrics.snapshot()["reads"] == {}
    assert route_of(repo, point_in_time=T0).facts.request == "point_in_time"
    with pytest.raises(ConfigurationError, match="unknown request kind 'bulk'"):
        repo.hybrid.explain("spend.amount", request="bulk")  # type: ignore[arg-type]
    with pytest.raises(PointInTimeError):
        repo.hybrid.explain("spend.amount", entity_ids={"nope": [1]})


def test_route_changes_are_remembered_across_stores(repo: Repo) -> None:
    repo.hybrid.get_features("spend.amount").collect()
    again = HybridFeatureStore(repo.materialized, repo.virtual)
    again.get_features("spend.amount").collect()
    assert repo.routes() == [("spend", None, "virtual")]  # the second store read it back


def test_auto_materialize_runs_off_the_read_path(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, hybrid_threshold_rows=2, auto_materialize_on_read=True)
    gate = threading.Event()
    promote = repo.hybrid.materialize

    def gated(group: str) -> Any:
        assert gate.wait(30)
        return promote(group)

    repo.hybrid.materialize = gated  # type: ignore[method-assign,assignment]
    route = route_of(repo)
    assert route.target == "virtual" and route.materialize
    out = repo.hybrid.get_features("spend.amount", entity_ids=IDS).collect()  # returns while the job waits
    assert out["amount"].to_list() == [5.0, 2.0, 3.0, None]
    assert not repo.hybrid.wait_for_materializations(timeout=0.05)
    assert route_of(repo).target == "virtual"
    repo.hybrid.get_features("spend.amount").collect()  # the job is running: no second one
    gate.set()
    assert repo.hybrid.wait_for_materializations(timeout=60)
    assert route_of(repo).target == "materialized"
    assert_frame_equal(repo.hybrid.get_features("spend.amount", entity_ids=IDS).collect(), out)
    assert repo.hybrid.metrics.snapshot()["materializations"] == {"started": 1, "succeeded": 1}
    assert [r[2] for r in repo.routes()] == ["virtual", "materialized"]
    repo.virtual.executor.close()


def test_auto_materialize_cool_down(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        hybrid_threshold_rows=2,
        auto_materialize_on_read=True,
        hybrid={"default_freshness": "1m", "materialize_cooldown_seconds": 3600},
    )
    repo.hybrid.get_features("spend.amount").collect()
    assert repo.hybrid.wait_for_materializations(timeout=60)
    time.sleep(0.01)
    repo.write_source(SPEND.with_columns(pl.col("amount") * 10))
    repo.clock.offset = timedelta(minutes=5)  # stale and above the threshold: due again...
    route = route_of(repo)
    assert route.target == "virtual" and route.materialize
    repo.hybrid.get_features("spend.amount").collect()  # ...but within the cool-down
    assert repo.hybrid.wait_for_materializations(timeout=60)
    assert repo.hybrid.metrics.snapshot()["materializations"] == {"started": 1, "succeeded": 1, "skipped": 1}
    repo.hybrid.config = repo.hybrid.config.with_options(hybrid={"materialize_cooldown_seconds": 0})
    repo.hybrid.get_features("spend.amount").collect()
    assert repo.hybrid.wait_for_materializations(timeout=60)
    assert repo.hybrid.metrics.snapshot()["materializations"]["succeeded"] == 2
    repo.clock.offset = timedelta(0)
    assert route_of(repo).target == "materialized"
    assert repo.hybrid.get_features("spend.amount").collect()["amount"].to_list() == [20.0, 30.0, 50.0]
    repo.virtual.executor.close()


def test_without_auto_materialize_nothing_is_materialized(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, hybrid_threshold_rows=2)
    repo.hybrid.get_features("spend.amount").collect()
    assert repo.hybrid.wait_for_materializations(timeout=1)
    assert repo.hybrid.metrics.snapshot()["materializations"] == {}
    assert repo.materialized.metadata.get_last_updated("spend") is None
    repo.virtual.executor.close()


def test_failed_background_materialization_is_counted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, hybrid_threshold_rows=2, auto_materialize_on_read=True)
    repo.write_source(SPEND.with_columns(pl.lit(None, pl.Int64).alias("user_id")))  # breaks the schema
    repo.hybrid.get_features("spend.amount").collect()
    assert repo.hybrid.wait_for_materializations(timeout=60)
    assert repo.hybrid.metrics.snapshot()["materializations"] == {"started": 1, "failed": 1}
    assert repo.materialized.metadata.get_last_updated("spend") is None  # nothing was written
    repo.virtual.executor.close()


def test_unreadable_sources_fall_back_to_the_copy(repo: Repo) -> None:
    repo.hybrid.materialize("spend")
    expected = repo.hybrid.get_features("spend.amount").collect()
    os.remove(repo.root / "spend.parquet")
    route = route_of(repo)
    assert (
        route.target == "materialized" and "is not virtual (or its sources are unavailable)" in route.reason
    )
    assert_frame_equal(repo.hybrid.get_features("spend.amount").collect(), expected)


def test_online_reads(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, enable_online_store=True, online_store={"type": "memory"})
    offline = repo.hybrid.get_online_features(["spend.amount"], {"user_id": 3})
    assert offline == {"amount": 5.0}
    assert route_of(repo, request="online").target == "virtual"
    repo.hybrid.materialize("spend")
    repo.materialized.materialize_online("spend")
    route = route_of(repo, request="online")
    assert route.target == "online" and route.reasons == (
        "the online store holds the latest values of 'spend'",
    )
    assert repo.hybrid.get_online_features(["spend.amount"], {"user_id": 3}) == offline
    repo.hybrid.write_features("users", USERS)  # stored, not synced: read offline, combined
    many = repo.hybrid.get_online_features(["age", "amount"], {"user_id": [3, 9]})
    assert isinstance(many, pl.DataFrame)
    assert many.rows() == [(3, 50, 5.0), (9, None, None)] and many.columns == ["user_id", "age", "amount"]
    assert repo.hybrid.get_online_features(["age", "amount"], {"user_id": 1}) == {"age": 30, "amount": 2.0}
    snapshot = repo.hybrid.metrics.snapshot()
    assert snapshot["reads"]["online"] == 3 and snapshot["reads"]["materialized"] == 2
    repo.virtual.executor.close()


@pytest.mark.parametrize("target", ["virtual", "materialized"])
def test_metrics_are_thread_safe(repo: Repo, target: str) -> None:
    if target == "materialized":
        repo.hybrid.materialize("spend")
        set_threshold(repo, 0)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(5):
                repo.hybrid.get_features("spend.amount", entity_ids={"user_id": [1]}).collect()
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    snapshot = repo.hybrid.metrics.snapshot()
    assert snapshot["reads"] == {target: 20}
    assert snapshot["groups"]["spend"][target]["reads"] == 20
    assert snapshot["seconds"][target] > 0
    assert repo.routes() == [("spend", None, target)]  # one change, even from four threads


def test_background_materialization_overlapping_virtual_reads(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, hybrid_threshold_rows=2, auto_materialize_on_read=True)
    expected = repo.virtual.get_features("spend.amount", entity_ids=IDS).collect()
    gate, started = threading.Event(), threading.Event()
    promote = repo.hybrid.materialize

    def gated(group: str) -> Any:
        started.set()
        assert gate.wait(30)
        return promote(group)  # reads the virtual group on DuckDB while the readers do

    repo.hybrid.materialize = gated  # type: ignore[method-assign,assignment]
    errors: list[BaseException] = []
    results: list[pl.DataFrame] = []

    def read() -> None:
        try:
            for _ in range(10):
                results.append(repo.hybrid.get_features("spend.amount", entity_ids=IDS).collect())
                gate.set()  # let the job run while the others keep reading
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert repo.hybrid.wait_for_materializations(timeout=60)
    assert errors == [] and started.is_set() and len(results) == 40
    for got in results:
        assert_frame_equal(got, expected)
    jobs = repo.hybrid.metrics.snapshot()["materializations"]
    assert (jobs["started"], jobs["succeeded"], jobs.get("failed")) == (1, 1, None)  # the rest: skipped
    assert route_of(repo).target == "materialized"
    assert_frame_equal(repo.hybrid.get_features("spend.amount", entity_ids=IDS).collect(), expected)
    repo.virtual.executor.close()


def test_stores_on_different_registries_are_refused(tmp_path: Path) -> None:
    materialized = MaterializedFeatureStore(storage_path=tmp_path / "a")
    virtual = VirtualizedFeatureStore(metadata=FeatureStoreMetadata(tmp_path / "b"))
    with pytest.raises(ConfigurationError, match="different registries"):
        HybridFeatureStore(materialized, virtual)
    virtual.executor.close()


def test_a_policy_sending_an_offline_read_online_is_refused(repo: Repo) -> None:
    class Online:
        name = "always-online"

        def decide(self, facts: RouteFacts) -> Route:
            return Route("online", ("because",), facts, self.name)

    hybrid = HybridFeatureStore(repo.materialized, repo.virtual, policy=Online())
    with pytest.raises(ConfigurationError, match="sent a latest read of 'spend' online"):
        hybrid.get_features("spend.amount")
    assert repo.routes() == []


def test_health_check_and_repr(repo: Repo) -> None:
    report = repo.hybrid.health_check()
    assert report and set(report.checks) == {"registry", "materialized.offline_storage", "virtual.executor"}
    assert "threshold_rows=100000" in repr(repo.hybrid) and "RouteMetrics(" in repr(repo.hybrid.metrics)


def test_writes_go_to_the_materialized_store(repo: Repo) -> None:
    record = repo.hybrid.write_features("users", USERS)
    assert record.rows == 3
    assert route_of(repo, "users.age").target == "materialized"
    assert repo.hybrid.get_features("users.age").collect()["age"].to_list() == [30, 40, 50]


rows_strategy = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 20), st.none() | st.floats(-5, 5, allow_nan=False)),
    min_size=0,
    max_size=25,
    unique_by=lambda r: (r[0], r[1]),  # unique (entity, event time): no write-order ties
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=rows_strategy,
    entity_rows=st.lists(st.tuples(st.integers(0, 5), st.integers(-1, 22)), min_size=1, max_size=8),
    at=st.integers(-1, 22),
)
def test_rows_are_identical_on_every_route(
    rows: list[tuple[int, int, float | None]], entity_rows: list[tuple[int, int]], at: int
) -> None:
    hours = [T0 + timedelta(hours=h) for h in range(-1, 23)]
    spend = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "ts": [hours[r[1] + 1] for r in rows],
            "amount": [r[2] for r in rows],
        },
        schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    )
    entity = pl.DataFrame(
        {"user_id": [e[0] for e in entity_rows], "t": [hours[e[1] + 1] for e in entity_rows]}
    )
    with tempfile.TemporaryDirectory() as folder:
        repo = make_repo(Path(folder), spend=spend)
        if rows:
            repo.hybrid.materialize("spend")
        results = {}
        for threshold in (1_000, 0):  # virtual, then materialized (when there is a copy)
            set_threshold(repo, threshold)
            target = route_of(repo).target
            results[target] = (
                repo.hybrid.get_features(
                    "spend.amount", entity_ids=entity, point_in_time=hours[at + 1]
                ).collect(),
                repo.hybrid.get_features("spend.amount", point_in_time=hours[at + 1]).collect(),
                repo.hybrid.get_historical_features(entity, ["spend.amount"]).collect(),
            )
        assert set(results) == ({"virtual", "materialized"} if rows else {"virtual"})
        first, *others = results.values()
        for other in others:
            for a, b in zip(first, other, strict=True):
                assert_frame_equal(a, b)
        repo.virtual.executor.close()


def test_latency_ratio_from_the_config(repo: Repo) -> None:
    repo.hybrid.materialize("spend")
    repo.hybrid.metrics.record_read("spend", "virtual", 1.0)
    repo.hybrid.metrics.record_read("spend", "materialized", 0.01)
    assert route_of(repo).target == "virtual"  # by default latency only breaks ties of unknown size
    repo.hybrid.config = repo.hybrid.config.with_options(hybrid={"latency_ratio": 2})
    route = route_of(repo)
    assert route.target == "materialized" and route.facts.latency_seconds == {
        "virtual": 1.0,
        "materialized": 0.01,
    }
    assert "more than 2x the materialized route's" in route.reasons[-1]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spend_rows=rows_strategy,
    user_rows=rows_strategy,
    entity_rows=st.lists(st.tuples(st.integers(0, 5), st.integers(-1, 22)), min_size=1, max_size=8),
    at=st.integers(-1, 22),
)
def test_mixed_routes_give_the_rows_of_one_store(
    spend_rows: list[tuple[int, int, float | None]],
    user_rows: list[tuple[int, int, float | None]],
    entity_rows: list[tuple[int, int]],
    at: int,
) -> None:
    hours = [T0 + timedelta(hours=h) for h in range(-1, 23)]

    def frame(rows: list[tuple[int, int, float | None]], column: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "user_id": [r[0] for r in rows],
                "ts": [hours[r[1] + 1] for r in rows],
                column: [r[2] for r in rows],
            },
            schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), column: pl.Float64},
        )

    spend = frame(spend_rows, "amount")
    users = frame(user_rows, "age").with_columns(pl.col("age").round(0).cast(pl.Int32))
    entity = pl.DataFrame(
        {"user_id": [e[0] for e in entity_rows], "t": [hours[e[1] + 1] for e in entity_rows]}
    )
    when = hours[at + 1]
    with tempfile.TemporaryDirectory() as folder:
        repo = make_repo(Path(folder), spend=spend)
        repo.hybrid.write_features("users", users)  # stored; spend stays virtual
        reference = MaterializedFeatureStore(
            storage_path=Path(folder) / "reference", config={"drift": {"enabled": False}}
        )
        for schema, data in ((SPEND_SCHEMA, spend), (USERS_SCHEMA, users)):
            reference.register_features(schema)
            reference.write_features(schema.name, data)
        names = ["users.age", "spend.amount"]
        routes = repo.hybrid.explain(names)
        assert isinstance(routes, dict) and {r.target for r in routes.values()} == {"materialized", "virtual"}
        assert_frame_equal(
            repo.hybrid.get_features(names, entity_ids=entity, point_in_time=when).collect(),
            reference.get_features(names, entity_ids=entity, point_in_time=when).collect(),
        )
        assert_frame_equal(
            repo.hybrid.get_features(names, point_in_time=when).collect(),
            reference.get_features(names, point_in_time=when).collect(),
        )
        assert_frame_equal(
            repo.hybrid.get_historical_features(entity, names, full_feature_names=True).collect(),
            reference.get_historical_features(entity, names, full_feature_names=True).collect(),
        )
        repo.virtual.executor.close()
