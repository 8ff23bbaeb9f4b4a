"""The routing policy as a pure function: a table of facts -> route, and its invariants."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tauro_workbench.stores.routing import (
    REQUEST_KINDS,
    DefaultRoutingPolicy,
    Route,
    RouteFacts,
    RoutingPolicy,
)

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)

# a virtual group with a fresh materialized copy, 500 rows against a threshold of 1000
BASE = RouteFacts(
    group="g",
    estimated_rows=500,
    threshold_rows=1_000,
    materialized=True,
    materialized_at=NOW - 2 * HOUR,
    last_source_change=NOW - 3 * HOUR,
    now=NOW,
    virtual_available=True,
)

CASES: list[tuple[str, RouteFacts, str, bool, str]] = [
    # (case, facts, target, materialize recommended, a phrase of the last reason)
    ("small and fresh: on demand", BASE, "virtual", False, "500 rows <= hybrid_threshold_rows=1000"),
    ("at the threshold: on demand", replace(BASE, estimated_rows=1_000), "virtual", False, "<= hybrid"),
    ("over the threshold", replace(BASE, estimated_rows=1_001), "materialized", False, "1001 rows > hybrid"),
    ("threshold 0", replace(BASE, threshold_rows=0, estimated_rows=1), "materialized", False, "> hybrid"),
    ("not virtual", replace(BASE, virtual_available=False), "materialized", False, "is not virtual"),
    (
        "neither virtual nor written",
        replace(BASE, virtual_available=False, materialized=False, materialized_at=None),
        "materialized",
        False,
        "no materialized data",
    ),
    (
        "virtual, never materialized, small",
        replace(BASE, materialized=False, materialized_at=None),
        "virtual",
        False,
        "no materialized data yet",
    ),
    (
        "virtual, never materialized, big: recommend materializing",
        replace(BASE, materialized=False, materialized_at=None, estimated_rows=5_000),
        "virtual",
        True,
        "materializing it would serve",
    ),
    (
        "big but stale beyond the requirement",
        replace(BASE, estimated_rows=5_000, last_source_change=NOW - HOUR, freshness_requirement=HOUR),
        "virtual",
        True,
        "more than its freshness requirement of 1h",
    ),
    (
        "big, sources changed, still within the requirement",
        replace(BASE, estimated_rows=5_000, last_source_change=NOW - HOUR, freshness_requirement=3 * HOUR),
        "materialized",
        False,
        "> hybrid_threshold_rows",
    ),
    (
        "big, old copy but no source change since",
        replace(BASE, estimated_rows=5_000, freshness_requirement=timedelta(0)),
        "materialized",
        False,
        "> hybrid_threshold_rows",
    ),
    (
        "source change time unknown counts as stale since materialization",
        replace(BASE, estimated_rows=5_000, last_source_change=None, freshness_requirement=HOUR),
        "virtual",
        True,
        "lag its sources by 2h",
    ),
    (
        "unknown size: the materialized copy",
        replace(BASE, estimated_rows=None),
        "materialized",
        False,
        "size of 'g' is unknown",
    ),
    (
        "unknown size: the faster measured route",
        replace(BASE, estimated_rows=None, latency_seconds={"materialized": 0.5, "virtual": 0.1}),
        "virtual",
        False,
        "virtual route measured faster",
    ),
    (
        "latency ignored by default when the size is known",
        replace(BASE, latency_seconds={"materialized": 0.01, "virtual": 9.0}),
        "virtual",
        False,
        "<= hybrid",
    ),
    (
        "online request, online holds the group",
        replace(BASE, request="online", online_available=True),
        "online",
        False,
        "online store holds",
    ),
    (
        "online request, not synced: offline rules",
        replace(BASE, request="online", estimated_rows=5_000),
        "materialized",
        False,
        "> hybrid",
    ),
    (
        "online availability does not matter to offline requests",
        replace(BASE, request="historical", online_available=True),
        "virtual",
        False,
        "<= hybrid",
    ),
    (
        "historical read of an online-only group: joined from online",
        replace(
            BASE, request="historical", virtual_available=False, materialized=False, online_available=True
        ),
        "online",
        False,
        "online-only",
    ),
    (
        "historical read of a stored group that online also holds: its table",
        replace(BASE, request="historical", virtual_available=False, online_available=True),
        "materialized",
        False,
        "reading its table",
    ),
    (
        "latest read of every entity of an online-only group: not online (no entity list to ask it)",
        replace(BASE, request="latest", virtual_available=False, materialized=False, online_available=True),
        "materialized",
        False,
        "cannot list every entity",
    ),
    (
        "latest read naming its entities of an online-only group: online",
        replace(
            BASE,
            request="latest",
            virtual_available=False,
            materialized=False,
            online_available=True,
            entities_named=True,
        ),
        "online",
        False,
        "latest row of each requested entity",
    ),
    (
        "point-in-time read naming its entities of a stored group online also holds: its table",
        replace(
            BASE, request="point_in_time", virtual_available=False, online_available=True, entities_named=True
        ),
        "materialized",
        False,
        "reading its table",
    ),
]


@pytest.mark.parametrize(
    ("facts", "target", "materialize", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_fact_table(facts: RouteFacts, target: str, materialize: bool, phrase: str) -> None:
    route = DefaultRoutingPolicy().decide(facts)
    assert (route.target, route.materialize) == (target, materialize)
    assert phrase in route.reasons[-1], route.reasons
    assert route.facts is facts and route.policy == "default" and route.group == "g"


def test_online_fallback_explains_why() -> None:
    route = DefaultRoutingPolicy().decide(replace(BASE, request="online"))
    assert route.target == "virtual"
    assert "does not hold 'g'" in route.reasons[0] and len(route.reasons) == 2


def test_freshness_met_is_stated() -> None:
    route = DefaultRoutingPolicy().decide(replace(BASE, estimated_rows=5_000, freshness_requirement=HOUR))
    assert route.target == "materialized"
    assert route.reasons[0] == "the materialized copy of 'g' meets its freshness requirement of 1h"


@pytest.mark.parametrize(
    ("latencies", "target"),
    [
        ({"materialized": 0.01, "virtual": 0.1}, "materialized"),  # 10x slower virtual gives way
        ({"materialized": 0.04, "virtual": 0.1}, "virtual"),  # 2.5x: within the ratio of 3
        ({"virtual": 0.1}, "virtual"),  # one side unmeasured: no latency rule
    ],
)
def test_latency_ratio(latencies: dict[str, float], target: str) -> None:
    route = DefaultRoutingPolicy(latency_ratio=3).decide(replace(BASE, latency_seconds=latencies))
    assert route.target == target
    if target == "materialized":
        assert "more than 3x the materialized route's" in route.reasons[-1]


def test_latency_ratio_must_exceed_one() -> None:
    with pytest.raises(ValueError, match="greater than 1"):
        DefaultRoutingPolicy(latency_ratio=1)


def test_staleness() -> None:
    assert BASE.staleness == timedelta(0)
    assert replace(BASE, last_source_change=NOW).staleness == 2 * HOUR
    assert replace(BASE, materialized_at=None).staleness is None
    assert replace(BASE, last_source_change=None, now=None).staleness is None
    assert replace(BASE, last_source_change=NOW, now=NOW - 3 * HOUR).staleness == timedelta(0)


def test_route_repr_and_protocol() -> None:
    route = DefaultRoutingPolicy().decide(BASE)
    assert repr(route) == f"Route('g' -> virtual: {route.reasons[0]})"
    assert route.reason == "; ".join(route.reasons)
    assert isinstance(DefaultRoutingPolicy(), RoutingPolicy)


stamps = st.one_of(st.none(), st.integers(-48, 48).map(lambda h: NOW + h * HOUR))
facts_strategy = st.builds(
    RouteFacts,
    group=st.sampled_from(["a", "b"]),
    request=st.sampled_from(REQUEST_KINDS),
    estimated_rows=st.one_of(st.none(), st.integers(0, 10_000)),
    threshold_rows=st.integers(0, 10_000),
    materialized=st.booleans(),
    materialized_at=stamps,
    last_source_change=stamps,
    now=st.one_of(st.none(), st.just(NOW)),
    freshness_requirement=st.one_of(st.none(), st.integers(0, 48).map(lambda h: h * HOUR)),
    virtual_available=st.booleans(),
    online_available=st.booleans(),
    entities_named=st.booleans(),
    latency_seconds=st.dictionaries(
        st.sampled_from(["materialized", "virtual"]), st.floats(0.001, 10, allow_nan=False)
    ),
)


@given(facts_strategy, st.one_of(st.none(), st.floats(1.5, 10)))
def test_policy_invariants(facts: RouteFacts, ratio: float | None) -> None:
    policy = DefaultRoutingPolicy(latency_ratio=ratio)
    route = policy.decide(facts)
    assert isinstance(route, Route) and route == policy.decide(facts)  # pure and deterministic
    assert route.reasons and all(isinstance(r, str) and r for r in route.reasons)
    if route.target == "online":
        assert facts.online_available
        # other reads go online only for an online-only group (nothing else holds its rows), and
        # latest / point-in-time reads only when they name their entities
        assert facts.request == "online" or (
            not facts.materialized
            and not facts.virtual_available
            and (facts.request == "historical" or facts.entities_named)
        )
    if route.target == "virtual":
        assert facts.virtual_available  # never compute what cannot be computed
    if route.target == "materialized":
        assert (
            facts.materialized or not facts.virtual_available
        )  # never read an empty copy of a virtual group
    if route.materialize:
        assert route.target == "virtual" and facts.over_threshold
    stale = (
        facts.freshness_requirement is not None
        and facts.staleness is not None
        and facts.staleness > facts.freshness_requirement
    )
    if facts.virtual_available and facts.materialized and facts.request != "online" and ratio is None:
        if stale or (facts.estimated_rows is not None and not facts.over_threshold):
            assert route.target == "virtual"
        elif facts.over_threshold:
            assert route.target == "materialized"


def test_virtual_first_computes_every_virtual_group_and_reads_the_rest() -> None:
    from tauro_workbench.stores.routing import VirtualFirstPolicy

    policy = VirtualFirstPolicy()
    big = RouteFacts(group="g", virtual_available=True, materialized=True, estimated_rows=10**9)
    assert policy.decide(big).target == "virtual" and policy.decide(big).policy == "virtual_first"
    stored = RouteFacts(group="t", virtual_available=False, materialized=True)
    assert policy.decide(stored).target == "materialized"
