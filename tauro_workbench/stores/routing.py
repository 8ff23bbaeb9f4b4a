"""Hybrid routing decisions as pure functions: facts in, an explained :class:`Route` out.

Nothing here reads a table, a clock or a registry: the hybrid store
(:mod:`tauro_workbench.stores.hybrid`) gathers the :class:`RouteFacts` of a group and asks a
:class:`RoutingPolicy` where to read it. That keeps every decision reproducible and testable
from a table of cases.

The :class:`DefaultRoutingPolicy`, in order:

1. ``online`` requests go online when the online store holds the group;
2. a group that is not virtual (or whose sources are unavailable) is read from its table; a
   ``historical`` read of an *online-only* group (no offline rows, online holds it) goes
   online: the online latest row per entity joined as of each entity row
   (:mod:`~tauro_workbench.stores.online_history`), and so does a ``latest`` or
   ``point_in_time`` read of one that names its entities;
3. a virtual group with no materialized data is computed on demand;
4. a materialized copy that lags its sources by more than the group's freshness requirement
   is bypassed: the virtual definition gives fresh values;
5. otherwise the estimated size decides: more than ``hybrid_threshold_rows`` rows reads the
   materialized copy, at most that many computes on demand (cheap and always fresh); with no
   estimate the faster measured route wins, else the materialized copy;
6. optionally (``latency_ratio``), a route measured ``latency_ratio`` times slower than the
   other one gives way to it.

Example:
    >>> facts = RouteFacts(group="users", estimated_rows=5, threshold_rows=10, virtual_available=True)
    >>> DefaultRoutingPolicy().decide(facts).target
    'virtual'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "REQUEST_KINDS",
    "DefaultRoutingPolicy",
    "RequestKind",
    "Route",
    "RouteFacts",
    "RouteTarget",
    "RoutingPolicy",
    "VirtualFirstPolicy",
]

RouteTarget = Literal["materialized", "virtual", "online"]
RequestKind = Literal["latest", "point_in_time", "historical", "online"]
REQUEST_KINDS: tuple[str, ...] = ("latest", "point_in_time", "historical", "online")


@dataclass(frozen=True)
class RouteFacts:
    """What is known about one group when a read is routed.

    Attributes:
        group: The feature group.
        request: ``latest`` (get_features now), ``point_in_time``, ``historical`` (a
            training set) or ``online``.
        estimated_rows: Rows the virtual definition reads (from source metadata); None if unknown.
        threshold_rows: ``hybrid_threshold_rows``: above it the materialized copy is preferred.
        materialized: The materialized store holds data for the group.
        materialized_at: When the group's data was last written (UTC).
        last_source_change: When a source of the virtual definition last changed (UTC).
        now: The instant of the decision (UTC), used for the staleness.
        freshness_requirement: How far the materialized copy may lag its sources (None: any).
        virtual_available: The group has a virtual definition whose sources are readable.
        online_available: The online store holds the group's latest values.
        entities_named: A ``latest`` or ``point_in_time`` read names its entities (the online
            store can be asked for them; it cannot list every entity).
        latency_seconds: Mean measured read latency per route (``"materialized"``, ...).
    """

    group: str
    request: RequestKind = "latest"
    estimated_rows: int | None = None
    threshold_rows: int = 100_000
    materialized: bool = False
    materialized_at: datetime | None = None
    last_source_change: datetime | None = None
    now: datetime | None = None
    freshness_requirement: timedelta | None = None
    virtual_available: bool = False
    online_available: bool = False
    entities_named: bool = False
    latency_seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def staleness(self) -> timedelta | None:
        """How long the materialized copy may have missed source changes.

        Zero when no source changed after the last materialization; otherwise the time since
        that materialization (an upper bound: the first missed change is not known). None when
        nothing is materialized or the instant of the decision is unknown.
        """
        if self.materialized_at is None:
            return None
        if self.last_source_change is not None and self.last_source_change <= self.materialized_at:
            return timedelta(0)
        if self.now is None:
            return None
        return max(self.now - self.materialized_at, timedelta(0))

    @property
    def over_threshold(self) -> bool:
        """True when the estimate is known and above ``threshold_rows``."""
        return self.estimated_rows is not None and self.estimated_rows > self.threshold_rows


@dataclass(frozen=True)
class Route:
    """Where one group is read from, and why.

    Attributes:
        target: ``"materialized"``, ``"virtual"`` or ``"online"``.
        reasons: Human sentences, in the order the policy applied them.
        facts: The facts the decision was made from.
        policy: Name of the policy that decided.
        materialize: The policy recommends materializing the group (it is read virtually
            although it is above the threshold); ``auto_materialize_on_read`` acts on it.
    """

    target: RouteTarget
    reasons: tuple[str, ...]
    facts: RouteFacts
    policy: str
    materialize: bool = False

    @property
    def group(self) -> str:
        """The routed group."""
        return self.facts.group

    @property
    def reason(self) -> str:
        """The reasons as one sentence."""
        return "; ".join(self.reasons)

    def __repr__(self) -> str:
        try:
            return f"Route({self.facts.group!r} -> {self.target}: {self.reason})"
        except Exception:  # a repr must never raise
            return object.__repr__(self)

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


@runtime_checkable
class RoutingPolicy(Protocol):
    """Decides a :class:`Route` from :class:`RouteFacts`; must be pure (same facts, same route)."""

    name: str

    def decide(self, facts: RouteFacts) -> Route:
        """Return the route of the group described by ``facts``."""
        ...


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def _latency(facts: RouteFacts, target: str) -> float | None:
    value = facts.latency_seconds.get(target)
    return None if value is None else float(value)


class DefaultRoutingPolicy:
    """Threshold, freshness, availability and (optionally) latency, in that order.

    Args:
        latency_ratio: When set (> 1), a route whose measured mean latency is more than this
            many times the other offline route's gives way to it. None: latency only breaks
            the tie when the row estimate is unknown.

    Example:
        >>> route = DefaultRoutingPolicy().decide(RouteFacts(group="g", materialized=True))
        >>> route.target, route.reasons[0]
        ('materialized', "group 'g' is not virtual (or its sources are unavailable): reading its table")
    """

    name = "default"

    def __init__(self, *, latency_ratio: float | None = None) -> None:
        if latency_ratio is not None and not latency_ratio > 1:
            raise ValueError(f"latency_ratio must be greater than 1, got {latency_ratio!r}")
        self.latency_ratio = latency_ratio

    def __repr__(self) -> str:
        return f"DefaultRoutingPolicy(latency_ratio={self.latency_ratio!r})"

    def decide(self, facts: RouteFacts) -> Route:
        """Return the route of one group (see the module docstring for the rules)."""
        g = repr(facts.group)
        reasons: list[str] = []
        if facts.request == "online":
            if facts.online_available:
                return self._route("online", [f"the online store holds the latest values of {g}"], facts)
            reasons.append(f"the online store does not hold {g} (not enabled or not synced): reading offline")
        if not facts.virtual_available:
            if facts.materialized:
                reasons.append(
                    f"group {g} is not virtual (or its sources are unavailable): reading its table"
                )
            elif facts.request == "historical" and facts.online_available:
                reasons.append(
                    f"group {g} is online-only (no virtual definition, no offline rows): joining the online "
                    "latest row per entity as of each entity row (history only as good as the latest value)"
                )
                return self._route("online", reasons, facts)
            elif (
                facts.request in ("latest", "point_in_time")
                and facts.online_available
                and facts.entities_named
            ):
                reasons.append(
                    f"group {g} is online-only (no virtual definition, no offline rows): reading the online "
                    "latest row of each requested entity, under the ttl as of the read's instant"
                )
                return self._route("online", reasons, facts)
            else:
                reasons.append(
                    f"group {g} has no readable virtual definition and no materialized data: "
                    "the materialized store answers"
                )
                if facts.online_available and facts.request in ("latest", "point_in_time"):
                    reasons.append(
                        "the online store holds it but cannot list every entity: name the entities"
                    )
            return self._route("materialized", reasons, facts)
        size = self._size(facts)
        if not facts.materialized:
            reasons.append(
                f"group {g} has no materialized data yet: computing it from its virtual definition"
            )
            if facts.over_threshold:
                reasons.append(f"{size}: materializing it would serve such reads from a table")
            return self._route("virtual", reasons, facts, materialize=facts.over_threshold)
        staleness = facts.staleness
        required = facts.freshness_requirement
        if required is not None and staleness is not None and staleness > required:
            reasons.append(
                f"the materialized copy of {g} may lag its sources by {_duration(staleness)}, more than "
                f"its freshness requirement of {_duration(required)}: computing fresh values"
            )
            return self._route("virtual", reasons, facts, materialize=facts.over_threshold)
        if required is not None:
            reasons.append(
                f"the materialized copy of {g} meets its freshness requirement of {_duration(required)}"
            )
        if facts.estimated_rows is None:
            faster = self._faster(facts)
            if faster is None:
                reasons.append(f"the size of {g} is unknown: reading the materialized copy")
                return self._route("materialized", reasons, facts)
            reasons.append(f"the size of {g} is unknown: the {faster} route measured faster")
            return self._route(faster, reasons, facts)
        target: RouteTarget = "materialized" if facts.over_threshold else "virtual"
        if target == "materialized":
            reasons.append(f"{size}: reading the materialized copy")
        else:
            reasons.append(f"{size}: computing on demand is cheap and always fresh")
        return self._route(self._by_latency(target, facts, reasons), reasons, facts)

    @staticmethod
    def _size(facts: RouteFacts) -> str:
        if facts.estimated_rows is None:
            return f"the size is unknown (hybrid_threshold_rows={facts.threshold_rows})"
        sign = ">" if facts.over_threshold else "<="
        return f"~{facts.estimated_rows} rows {sign} hybrid_threshold_rows={facts.threshold_rows}"

    @staticmethod
    def _faster(facts: RouteFacts) -> RouteTarget | None:
        m, v = _latency(facts, "materialized"), _latency(facts, "virtual")
        if m is None or v is None:
            return None
        return "virtual" if v < m else "materialized"

    def _by_latency(self, target: RouteTarget, facts: RouteFacts, reasons: list[str]) -> RouteTarget:
        if self.latency_ratio is None:
            return target
        other: RouteTarget = "virtual" if target == "materialized" else "materialized"
        mine, theirs = _latency(facts, target), _latency(facts, other)
        if mine is None or theirs is None or mine <= self.latency_ratio * theirs:
            return target
        reasons.append(
            f"but the {target} route measured {mine * 1000:.3g} ms, more than {self.latency_ratio:g}x "
            f"the {other} route's {theirs * 1000:.3g} ms: reading {other}"
        )
        return other

    def _route(
        self, target: RouteTarget, reasons: list[str], facts: RouteFacts, *, materialize: bool = False
    ) -> Route:
        return Route(target, tuple(reasons), facts, self.name, materialize=materialize)


class VirtualFirstPolicy:
    """Compute every virtual group on demand; read a group that is not virtual from its table.

    What a pipeline's ``feature_store: virtualized`` read asks for (always fresh values for the
    virtual groups, and the stored values of the rest), and a policy to compare routes with.

    Example:
        >>> VirtualFirstPolicy().decide(RouteFacts(group="g", virtual_available=True)).target
        'virtual'
    """

    name = "virtual_first"

    def decide(self, facts: RouteFacts) -> Route:
        """Return ``virtual`` when the group has a readable definition, else ``materialized``."""
        g = repr(facts.group)
        if facts.virtual_available:
            return Route("virtual", (f"virtual first: computing {g} from its definition",), facts, self.name)
        return Route(
            "materialized", (f"virtual first: {g} is not virtual, reading its table",), facts, self.name
        )
