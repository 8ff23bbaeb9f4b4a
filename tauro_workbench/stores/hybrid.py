"""HybridFeatureStore: every read routed, per group, to the materialized, virtual or online store.

For each requested group the store gathers :class:`~tauro_workbench.stores.routing.RouteFacts`
(the row estimate of the virtual definition's sources against ``hybrid_threshold_rows``, when
the group was last materialized and when its sources last changed against its freshness
requirement, which routes are available, the measured latency of each route) and asks its
:class:`~tauro_workbench.stores.routing.RoutingPolicy`. A request spanning several groups is
routed per group and the parts are combined exactly as one store would combine them, so the
rows are the same on every route (the contract suite and a property test hold this).

- :meth:`HybridFeatureStore.explain` returns the decision without reading anything;
- a group whose route differs from its previous one (also across processes: the last route
  is read back from the event history) publishes a ``RouteChanged`` event;
- :attr:`HybridFeatureStore.metrics` counts reads, errors and seconds per route (thread-safe);
- with ``auto_materialize_on_read``, a virtual group read while above the threshold (never
  materialized, or stale) is materialized through the promotion path in a background thread
  (:mod:`~tauro_workbench.stores.auto_materialize`), at most once per
  ``hybrid.materialize_cooldown_seconds`` per group; the read itself is answered virtually
  and never waits. :meth:`HybridFeatureStore.wait_for_materializations`
  waits for those jobs.

Every read is planned once with :func:`~tauro_workbench.retrieval.plan_read` (names, entity
frame, output names), as every store plans it. Reads are collected by the router (the result is returned as a ``LazyFrame`` over the collected
rows) so that the measured latency is the real one.

Example:
    >>> hybrid = HybridFeatureStore(materialized, virtual)  # doctest: +SKIP
    >>> hybrid.explain(["user_features.age"])               # doctest: +SKIP
    Route('user_features' -> virtual: ~500 rows <= hybrid_threshold_rows=100000: ...)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

import polars as pl
from loguru import logger

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.exceptions import ConfigurationError, PointInTimeError
from tauro_workbench.frames import FrameLike, to_dataframe
from tauro_workbench.monitoring.events import RouteChanged
from tauro_workbench.retrieval import ReadPlan, plan_read
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.stores.auto_materialize import MaterializationScheduler
from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND, BaseFeatureStore, HealthReport
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.online_history import join_online_latest, read_online_latest
from tauro_workbench.stores.route_metrics import RouteMetrics
from tauro_workbench.stores.routing import (
    REQUEST_KINDS,
    DefaultRoutingPolicy,
    RequestKind,
    Route,
    RouteFacts,
    RoutingPolicy,
)
from tauro_workbench.stores.source_facts import SourceFacts
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

__all__ = ["HybridFeatureStore", "RouteMetrics"]

_SYNC_DOCUMENT = "online_sync"  # see stores/online_serving.py
_UNSEEN = object()


def _is_many(value: Any) -> bool:
    return isinstance(value, list | tuple | range | pl.Series)


class HybridFeatureStore(BaseFeatureStore):
    """Routes each read to a materialized, virtual or online store by an explainable policy.

    Args:
        materialized: The materialized store (its registry and event bus are shared), or, as in
            the Tauro design, a context (None, a dict of options or an object with
            ``feature_store_path`` / ``feature_store_config`` / ``sources``): then both stores
            are built from it and ``config`` on one registry.
        virtual: The virtualized store, on the same registry (built when omitted).
        config: Options of the router (default: the materialized store's config).
        policy: The routing policy (default :class:`DefaultRoutingPolicy` with
            ``hybrid.latency_ratio``).
        clock: Returns the current UTC instant (tests pass a fixed one).

    Raises:
        ConfigurationError: If the two stores do not share a registry.

    Example:
        >>> hybrid = HybridFeatureStore(materialized, virtual)             # doctest: +SKIP
        >>> hybrid = HybridFeatureStore(context, config=config)            # doctest: +SKIP
        >>> hybrid.get_features(["age"], entity_ids={"user_id": [1]}).collect()  # doctest: +SKIP
    """

    def __init__(
        self,
        materialized: MaterializedFeatureStore | Any = None,
        virtual: VirtualizedFeatureStore | None = None,
        *,
        config: FeatureStoreConfig | Mapping[str, Any] | None = None,
        policy: RoutingPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(materialized, MaterializedFeatureStore):  # a Tauro context
            materialized = MaterializedFeatureStore(materialized, config=config)
            config = None
        if virtual is None:
            virtual = VirtualizedFeatureStore(
                materialized.context,
                config=materialized.config,
                metadata=materialized.metadata,
                events=materialized.events,
            )
        same = virtual.metadata is materialized.metadata or (
            not virtual.metadata.in_memory
            and not materialized.metadata.in_memory
            and virtual.metadata.location == materialized.metadata.location
        )
        if not same:
            raise ConfigurationError(
                f"The materialized and virtual stores use different registries "
                f"({materialized.metadata.location!r} and {virtual.metadata.location!r}).",
                hint="Build both on one registry: VirtualizedFeatureStore(..., metadata=materialized.metadata).",
            )
        super().__init__(
            config=config if config is not None else materialized.config,
            metadata=materialized.metadata,
            events=materialized.events,
        )
        self.materialized = materialized
        self.virtual = virtual
        self._policy = policy
        self.metrics = RouteMetrics()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._last_routes: dict[str, str | None] = {}
        self._sources = SourceFacts(lambda: virtual.executor.sources)
        self._scheduler = MaterializationScheduler(
            lambda group: self.materialize(group),  # looked up per job: a wrapper set later applies
            self.metrics,
            lambda: self.config.hybrid.materialize_cooldown_seconds,
        )
        #: The routes of the latest read, per group (like ``last_read_info``: the latest call of
        #: any thread), e.g. to tell which groups of a training set were read from a table.
        self.last_routes: dict[str, Route] = {}

    @property
    def policy(self) -> RoutingPolicy:
        """The routing policy: the one given, else the default with ``hybrid.latency_ratio``."""
        if self._policy is not None:
            return self._policy
        return DefaultRoutingPolicy(latency_ratio=self.config.hybrid.latency_ratio)

    # -- routing --------------------------------------------------------------------------
    def route_facts(
        self, feature_group: str, *, request: RequestKind = "latest", entities_named: bool = False
    ) -> RouteFacts:
        """Gather the facts the policy decides ``feature_group``'s route from (reads metadata only).

        ``entities_named``: the read names its entities (see :class:`RouteFacts`).

        Example:
            >>> hybrid.route_facts("user_features").estimated_rows  # doctest: +SKIP
            500
        """
        schema = self.metadata.get_feature_group(feature_group)
        return self._facts(schema, request, entities_named=entities_named)

    def _facts(self, schema: FeatureGroupSchema, request: RequestKind, *, entities_named: bool) -> RouteFacts:
        name = schema.name
        virtual_ok, rows, changed = False, None, None
        document = self.metadata.find_document(VIRTUAL_DEFINITION_KIND, name)
        if document is not None:
            virtual_ok, rows, changed = self._sources.of(name, [str(s) for s in document.get("sources", [])])
        materialized_at = self.metadata.get_last_updated(name, schema.version)
        online_ok = (request == "online" or not virtual_ok) and self._online_holds(schema, materialized_at)
        materialized = materialized_at is not None
        if materialized and online_ok and not virtual_ok and (request == "historical" or entities_named):
            materialized = self.materialized._table(schema).exists()  # False: online-only
        return RouteFacts(
            group=name,
            request=request,
            estimated_rows=rows,
            threshold_rows=self.config.hybrid_threshold_rows,
            materialized=materialized,
            materialized_at=materialized_at,
            last_source_change=changed,
            now=self._clock(),
            freshness_requirement=self.config.hybrid.freshness_for(name, schema.tags),
            virtual_available=virtual_ok,
            online_available=online_ok,
            entities_named=entities_named,
            latency_seconds=self.metrics.latencies(name),
        )

    def _online_holds(self, schema: FeatureGroupSchema, materialized_at: datetime | None) -> bool:
        cfg = self.materialized.config
        assigned = getattr(self.materialized, "_online_store", None) is not None
        if not (cfg.enable_online_store or cfg.sync_to_online or assigned):
            return False
        doc = self.metadata.find_document(_SYNC_DOCUMENT, schema.name) or {}
        synced = doc.get("status") == "ok" and doc.get("version") == schema.version
        return synced or (cfg.sync_to_online and materialized_at is not None)

    def _decide(
        self, schema: FeatureGroupSchema, request: RequestKind, *, entities_named: bool = False
    ) -> Route:
        route = self.policy.decide(self._facts(schema, request, entities_named=entities_named))
        if not isinstance(route, Route) or route.target not in ("materialized", "virtual", "online"):
            raise ConfigurationError(f"routing policy {self.policy!r} returned {route!r}, not a Route.")
        if route.target == "online" and request not in ("online", "historical") and not entities_named:
            raise ConfigurationError(
                f"routing policy {getattr(self.policy, 'name', self.policy)!r} sent a {request} read of "
                f"{schema.name!r} online; only online reads can be served there.",
            )
        return route

    @contextmanager
    def _reading(
        self, schemas: Mapping[str, FeatureGroupSchema], request: RequestKind, *, entities_named: bool = False
    ) -> Iterator[dict[str, Route]]:
        """Decide the routes of a read and publish route changes; after a successful read, start
        the materializations it made due (so they never compete with the read itself)."""
        routes = {
            name: self._decide(schema, request, entities_named=entities_named)
            for name, schema in schemas.items()
        }
        for route in routes.values():
            self._observe(route)
        self.last_routes = dict(routes)
        yield routes
        if self.config.auto_materialize_on_read:
            for route in routes.values():
                if route.materialize and route.target == "virtual":
                    self._scheduler.schedule(route.group)

    def _observe(self, route: Route) -> None:
        group = route.group
        with self._lock:
            previous = self._last_routes.get(group, _UNSEEN)
        if previous is _UNSEEN:
            history = self.events.history(kind=RouteChanged.kind, group=group)
            previous = cast(RouteChanged, history[-1]).route if history else None
        with self._lock:
            previous = self._last_routes.get(group, previous)
            changed = previous != route.target
            self._last_routes[group] = route.target
        if changed:
            self.metrics.record_route_change()
            logger.info("route of {}: {} -> {} ({})", group, previous, route.target, route.reason)
            self.events.publish(
                RouteChanged(
                    group=group, previous=cast(str | None, previous), route=route.target, reason=route.reason
                )
            )

    def explain(
        self,
        feature_names: Sequence[str] | str,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        point_in_time: datetime | None = None,
        *,
        request: RequestKind | None = None,
    ) -> Route | dict[str, Route]:
        """Return where a read would go and why, reading nothing and publishing nothing.

        Args:
            feature_names: The features of the read.
            entity_ids: The read's entities (an online-only group is read online only when
                they are named).
            point_in_time: The read's instant (a ``point_in_time`` request when given).
            request: ``latest``, ``point_in_time``, ``historical`` or ``online`` (default from
                ``point_in_time``).

        Returns:
            The :class:`Route` of the one group read, or ``{group: Route}`` when the read spans
            several groups.

        Raises:
            FeatureNotFoundError: For an unknown feature.
            ConfigurationError: For an unknown request kind.

        Example:
            >>> hybrid.explain(["user_features.age"]).reasons  # doctest: +SKIP
            ('~500 rows <= hybrid_threshold_rows=100000: computing on demand is cheap and always fresh',)
        """
        kind = request or ("latest" if point_in_time is None else "point_in_time")
        if kind not in REQUEST_KINDS:
            raise ConfigurationError(f"unknown request kind {kind!r}; valid kinds: {list(REQUEST_KINDS)}")
        schemas = plan_read(self.metadata, feature_names, entity_ids=entity_ids).schemas
        named = entity_ids is not None and kind in ("latest", "point_in_time")
        routes = {name: self._decide(schema, kind, entities_named=named) for name, schema in schemas.items()}
        return next(iter(routes.values())) if len(routes) == 1 else routes

    @staticmethod
    def _names(plan: ReadPlan, group: str | None = None) -> list[str]:
        """The qualified names of the plan's features (of one group), in request order."""
        qualified = {
            out: f"{g}.{feature}"
            for g, request in plan.groups.items()
            if group is None or g == group
            for feature, out in zip(request.features, request.outputs, strict=True)
        }
        return [qualified[out] for out in plan.order if out in qualified]

    def _store(self, target: str) -> BaseFeatureStore:
        return self.virtual if target == "virtual" else self.materialized

    def _timed(
        self, routes: Mapping[str, Route], target: str, read: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Call ``read(*args, **kwargs)``, collect a lazy result, and record the time per group."""
        groups = [g for g, r in routes.items() if r.target == target]
        started = time.perf_counter()
        try:
            result = read(*args, **kwargs)
            if isinstance(result, pl.LazyFrame):
                result = result.collect()
        except Exception:
            for group in groups:
                self.metrics.record_read(group, target, 0.0, ok=False)
            raise
        share = (time.perf_counter() - started) / max(len(groups), 1)
        for group in groups:
            self.metrics.record_read(group, target, share)
        return result

    # -- reads ----------------------------------------------------------------------------
    def get_features(
        self,
        feature_names: Sequence[str] | str,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        point_in_time: datetime | None = None,
        *,
        full_feature_names: bool = False,
    ) -> pl.LazyFrame:
        """Return the latest value of each feature per entity, each group read where it is routed.

        The semantics are those of every store (see :meth:`MaterializedFeatureStore.get_features`).

        Raises:
            FeatureNotFoundError: For unknown or ambiguous names.
            PointInTimeError: For malformed entity ids.

        Example:
            >>> hybrid.get_features(["age"], entity_ids={"user_id": [1, 2]}).collect()  # doctest: +SKIP
        """
        plan = plan_read(
            self.metadata, feature_names, entity_ids=entity_ids, full_feature_names=full_feature_names
        )
        schemas, ids = plan.schemas, plan.ids
        if ids is None and len({tuple(s.entity_keys) for s in schemas.values()}) > 1:
            raise PointInTimeError(
                f"the requested groups have different entity keys "
                f"{sorted({tuple(s.entity_keys) for s in schemas.values()})}, so 'every entity' is undefined",
                hint="Pass entity_ids with every key column.",
            )
        kind: RequestKind = "latest" if point_in_time is None else "point_in_time"
        with self._reading(schemas, kind, entities_named=ids is not None) as routes:
            targets = list(dict.fromkeys(r.target for r in routes.values()))
            if len(targets) == 1 and targets[0] != "online":
                store = self._store(targets[0])
                names = self._names(plan)
                frame = self._timed(
                    routes,
                    targets[0],
                    store.get_features,
                    names,
                    ids,
                    point_in_time,
                    full_feature_names=full_feature_names,
                )
                return cast(pl.DataFrame, frame).lazy()
            parts = {}
            for group, route in routes.items():
                if route.target == "online":  # online-only, entities named: see stores/online_history.py
                    assert ids is not None  # the policy routes it online only then
                    parts[group] = self._timed(
                        {group: route},
                        "online",
                        read_online_latest,
                        self.materialized.online,
                        plan.groups[group],
                        ids,
                        point_in_time,
                    )
                    continue
                store = self._store(route.target)
                names = self._names(plan, group)
                part_ids = None if ids is None else ids.select(schemas[group].entity_keys)
                parts[group] = self._timed(
                    {group: route},
                    route.target,
                    store.get_features,
                    names,
                    part_ids,
                    point_in_time,
                    full_feature_names=full_feature_names,
                )
            return _combine_latest(parts, schemas, ids).lazy()

    def get_historical_features(
        self,
        entity_df: FrameLike,
        feature_names: Sequence[str] | str,
        *,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
    ) -> pl.LazyFrame:
        """Join features onto ``entity_df`` as of each row's time, each group read where it is routed.

        A training set over a materialized and a virtual group joins each on its own route;
        the result is the one either store alone would return.

        Raises:
            PointInTimeError: For a missing key or time column, or a name clash.

        Example:
            >>> hybrid.get_historical_features(labels, ["user_features.age", "spend.amount"]).collect()  # doctest: +SKIP
        """
        entity = to_dataframe(entity_df)
        plan = plan_read(
            self.metadata,
            feature_names,
            entity_df=entity,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
        )
        schemas, time_column = plan.schemas, plan.time_column
        with self._reading(schemas, "historical") as routes:
            targets = list(dict.fromkeys(r.target for r in routes.values()))
            if len(targets) == 1 and targets[0] != "online":
                store = self._store(targets[0])
                names = self._names(plan)
                frame = self._timed(
                    routes,
                    targets[0],
                    store.get_historical_features,
                    entity,
                    names,
                    full_feature_names=full_feature_names,
                    timestamp_column=time_column,
                )
                return cast(pl.DataFrame, frame).lazy()
            out = entity
            for group, route in routes.items():
                if route.target == "online":  # online-only: see stores/online_history.py
                    request = plan.groups[group]
                    out = self._timed(
                        {group: route},
                        "online",
                        join_online_latest,
                        self.materialized.online,
                        request.schema,
                        request.features,
                        request.outputs,
                        out,
                        time_column,
                    )
                    continue
                store = self._store(route.target)
                names = self._names(plan, group)
                out = self._timed(
                    {group: route},
                    route.target,
                    store.get_historical_features,
                    out,
                    names,
                    full_feature_names=full_feature_names,
                    timestamp_column=time_column,
                )
            return out.lazy()

    def get_online_features(
        self,
        feature_names: Sequence[str] | str,
        entity_keys: Mapping[str, Any],
        *,
        full_feature_names: bool = False,
    ) -> dict[str, Any] | pl.DataFrame:
        """Return the latest live values online where the group is synced, else from offline.

        Same shapes as :meth:`MaterializedFeatureStore.get_online_features`: one entity (scalar
        keys) gives a dict, many (key lists) a DataFrame of the keys then the features.

        Raises:
            FeatureNotFoundError: For an unknown or ambiguous feature name.
            PointInTimeError: If a key is missing or key lists differ in length.

        Example:
            >>> hybrid.get_online_features(["user_features.age"], {"user_id": 1})  # doctest: +SKIP
            {'age': 31}
        """
        plan = plan_read(self.metadata, feature_names, full_feature_names=full_feature_names)
        schemas = plan.schemas
        with self._reading(schemas, "online") as routes:
            if all(r.target == "online" for r in routes.values()):
                names = self._names(plan)
                return self._timed(  # type: ignore[no-any-return]
                    routes,
                    "online",
                    self.materialized.get_online_features,
                    names,
                    entity_keys,
                    full_feature_names=full_feature_names,
                )
            many = any(_is_many(v) for v in entity_keys.values())
            lengths = {k: len(v) for k, v in entity_keys.items() if _is_many(v)}
            if len(set(lengths.values())) > 1:
                raise PointInTimeError(
                    f"entity key lists differ in length: {lengths}",
                    hint="Composite keys are matched as tuples: give every key the same number of values.",
                )
            count = next(iter(lengths.values())) if lengths else 1
            keys = {k: (list(v) if _is_many(v) else [v] * count) for k, v in entity_keys.items()}
            columns: dict[str, pl.Series] = {k: pl.Series(k, v) for k, v in keys.items()}
            for group, route in routes.items():
                names = self._names(plan, group)
                outputs = plan.outputs[group]
                missing = [k for k in schemas[group].entity_keys if k not in keys]
                if missing:
                    raise PointInTimeError(
                        f"entity_keys lack {missing} needed by feature group {group!r}; got {list(entity_keys)}",
                        hint=f"Pass every entity key of the group: {schemas[group].entity_keys}.",
                    )
                if route.target == "online":
                    part = self._timed(
                        {group: route},
                        "online",
                        self.materialized.get_online_features,
                        names,
                        keys,
                        full_feature_names=full_feature_names,
                    )
                else:
                    ids = {k: keys[k] for k in schemas[group].entity_keys}
                    store = self._store(route.target)
                    part = self._timed(
                        {group: route},
                        route.target,
                        store.get_features,
                        names,
                        ids,
                        full_feature_names=full_feature_names,
                    )
                columns.update({o: part.get_column(o) for o in outputs})
            order = list(plan.order)
            frame = pl.DataFrame([columns[name] for name in [*keys, *order]])
            if many:
                return frame
            return {name: frame.get_column(name)[0] for name in order}

    # -- writes and materialization -------------------------------------------------------
    def write_features(
        self,
        feature_group: str,
        data: FrameLike,
        mode: str = "append",
        backfill: bool = False,
        *,
        on_drift: str | None = None,
    ) -> Any:
        """Write to the materialized store (see :meth:`MaterializedFeatureStore.write_features`).

        Example:
            >>> hybrid.write_features("user_features", df)  # doctest: +SKIP
        """
        return self.materialized.write_features(feature_group, data, mode, backfill, on_drift=on_drift)

    def materialize(self, feature_group: str) -> Any:
        """Materialize a virtual group now through the promotion path (idempotent).

        Returns:
            The :class:`~tauro_workbench.stores.promotion.PromotionResult`.

        Example:
            >>> hybrid.materialize("user_features").changed  # doctest: +SKIP
            True
        """
        from tauro_workbench.stores.promotion import promote

        return promote(self.virtual, self.materialized, feature_group, to="materialized")

    def wait_for_materializations(self, timeout: float | None = None) -> bool:
        """Wait for the background materializations started so far; True when all finished.

        Example:
            >>> hybrid.wait_for_materializations(timeout=60)  # doctest: +SKIP
            True
        """
        return self._scheduler.wait(timeout)

    def close(self) -> None:
        """Wait for background materializations (the two stores are closed by their owner)."""
        self.wait_for_materializations()

    def health_check(self) -> HealthReport:
        """Check the registry and both stores (checks prefixed ``materialized.`` / ``virtual.``)."""
        checks = {"registry": self.metadata.health_check()}
        details: dict[str, str] = {}
        for prefix, store in (("materialized", self.materialized), ("virtual", self.virtual)):
            report = store.health_check()
            for name, ok in report.checks.items():
                if name != "registry":
                    checks[f"{prefix}.{name}"] = ok
            details.update({f"{prefix}.{k}": v for k, v in report.details.items()})
        return HealthReport(checks=checks, details=details)

    def __repr__(self) -> str:
        return (
            f"HybridFeatureStore(storage_path={self.config.storage_path!r}, "
            f"threshold_rows={self.config.hybrid_threshold_rows}, policy={getattr(self.policy, 'name', self.policy)!r})"
        )


def _combine_latest(
    parts: Mapping[str, pl.DataFrame],
    schemas: Mapping[str, FeatureGroupSchema],
    ids: pl.DataFrame | None,
) -> pl.DataFrame:
    """Combine per-group latest values the way one store combines its groups."""
    if ids is None:
        keys = list(next(iter(schemas.values())).entity_keys)
        frames = list(parts.values())
        out = frames[0]
        for frame in frames[1:]:
            out = out.join(frame, on=keys, how="full", coalesce=True)
        return out.sort(keys)
    out = ids
    for group, part in parts.items():
        keys = list(schemas[group].entity_keys)
        out = out.with_columns([part.get_column(k) for k in keys]).hstack(
            [part.get_column(c) for c in part.columns if c not in keys]
        )
    return out
