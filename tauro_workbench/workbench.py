"""Workbench: one object for a feature repository, from the first source to online serving.

``Workbench(path_or_config=None)`` opens the repository at ``path`` (default
:data:`~tauro_workbench.config.DEFAULT_REPO`, ``./feature_repo``), creating it with the embedded
defaults when missing: a SQLite registry, Delta offline tables, DuckDB, an in-memory online store,
hybrid routing. A ``tauro.yaml`` in the folder, or the config given, can name Spark or Redis
instead. Read-only opens (``Workbench.open(path)`` or ``create=False``) of a folder holding no
repo raise :class:`~tauro_workbench.exceptions.RepositoryNotFoundError` and create nothing.

Every verb delegates to the stores (:attr:`Workbench.materialized`, :attr:`Workbench.virtual`,
:attr:`Workbench.hybrid`; :attr:`Workbench.store` is the one ``config.mode`` selects) and
returns nouns: :class:`Preview`, :class:`TrainingSet`,
:class:`~tauro_workbench.stores.promotion.PromotionResult`,
:class:`~tauro_workbench.stores.routing.Route`, :class:`~tauro_workbench.stores.base.HealthReport`.

Example:
    >>> wb = Workbench("./feature_repo")                                    # doctest: +SKIP
    >>> wb.add_source("silver.users", "sample_data/silver/users.parquet")   # doctest: +SKIP
    >>> wb.register(wb.infer_schema("sample_data/silver/users.parquet", "users", ["user_id"], "ts"))  # doctest: +SKIP
    >>> wb.define_virtual("users", sql="SELECT * FROM silver.users")      # doctest: +SKIP
    >>> wb.promote("users", to="online")                                     # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from tauro_workbench.config import FeatureStoreConfig, FeatureStoreMode
from tauro_workbench.engines import create_executor
from tauro_workbench.exceptions import ConfigurationError, RepositoryNotFoundError
from tauro_workbench.feature_view import FeatureView, get_feature_view, save_feature_view
from tauro_workbench.frames import FrameLike
from tauro_workbench.monitoring.events import EventBus
from tauro_workbench.registry import FeatureStoreMetadata, WriteRecord
from tauro_workbench.results import Preview, TrainingSet
from tauro_workbench.retrieval import plan_read
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.schema_inference import infer_schema
from tauro_workbench.sources import DataSource, SourceRegistry
from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND, BaseFeatureStore, HealthReport
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tauro_workbench.stores.promotion import PromotionResult, promote
from tauro_workbench.stores.virtualized import VirtualDefinition, VirtualizedFeatureStore

if TYPE_CHECKING:
    from tauro_workbench.lineage_graph import LineageGraph
    from tauro_workbench.monitoring.drift import DriftReport
    from tauro_workbench.stores.hybrid import HybridFeatureStore
    from tauro_workbench.stores.routing import Route

__all__ = ["CONFIG_FILE", "Preview", "TrainingSet", "Workbench"]

#: The config file read from a repository folder.
CONFIG_FILE = "tauro.yaml"

#: What a Workbench uses unless the config says otherwise (the embedded defaults).
_WORKBENCH_DEFAULTS: dict[str, Any] = {"mode": "hybrid", "enable_online_store": True}

Features = Sequence[str] | str | FeatureView


def _resolve_config(path_or_config: Any) -> FeatureStoreConfig:
    """Return the config of a Workbench: embedded defaults under what the user set."""
    if isinstance(path_or_config, FeatureStoreConfig):
        given = path_or_config.model_dump(exclude_unset=True)
        return FeatureStoreConfig.from_dict({**_WORKBENCH_DEFAULTS, **given}, env=False)
    if isinstance(path_or_config, Mapping):
        options: dict[str, Any] = dict(path_or_config)
        if isinstance(options.get("feature_store"), Mapping):
            options = dict(options["feature_store"])
        return FeatureStoreConfig.from_dict({**_WORKBENCH_DEFAULTS, **options})
    if path_or_config is None:
        return FeatureStoreConfig.from_dict(dict(_WORKBENCH_DEFAULTS))
    if not isinstance(path_or_config, (str, os.PathLike)):
        raise ConfigurationError(
            f"Workbench takes a repo path, a FeatureStoreConfig or a dict of options, "
            f"got {type(path_or_config).__name__}."
        )
    root = Path(path_or_config)
    options = {}
    file = root / CONFIG_FILE
    if file.is_file():
        options = FeatureStoreConfig.from_yaml(file, env=False).model_dump(exclude_unset=True)
    # The folder named wins over TAURO_FS_STORAGE_PATH (env still sets every other option).
    config = FeatureStoreConfig.from_dict({**_WORKBENCH_DEFAULTS, **options})
    return config.with_options(storage_path=str(root))


class Workbench:
    """A feature repository: sources, groups, writes, promotion, reads and insight in one place.

    Args:
        path_or_config: The repo folder (default ``./feature_repo``; its ``tauro.yaml`` is
            read), a :class:`FeatureStoreConfig`, or a dict of options.
        create: False to refuse a folder that holds no repo (nothing is created).
        spark: A SparkSession; it selects the Spark executor unless the config names one.

    Raises:
        RepositoryNotFoundError: With ``create=False`` for a folder without ``registry.db``.
        ConfigurationError: For invalid options.

    Example:
        >>> with Workbench("/tmp/tauro_doc_repo") as wb:   # doctest: +SKIP
        ...     print(wb.health_check())
        HealthReport(healthy: registry=ok, storage=ok, executor=ok, online=ok)
    """

    def __init__(
        self,
        path_or_config: str | os.PathLike[str] | FeatureStoreConfig | Mapping[str, Any] | None = None,
        *,
        create: bool = True,
        spark: Any | None = None,
    ) -> None:
        config = _resolve_config(path_or_config)
        if spark is not None and "executor_type" not in config.virtualized.model_fields_set:
            config = config.with_options(virtualized={"executor_type": "spark"})
        if config.mode is FeatureStoreMode.ONLINE:
            # Feast-like: writes land offline (the source of truth) and every write is synced online
            config = config.with_options(enable_online_store=True, sync_to_online=True)
        self.config = config
        self.path = Path(config.storage_path)
        if not create and not config.registry_path.is_file():
            raise RepositoryNotFoundError(str(self.path))
        self.metadata = FeatureStoreMetadata(config=config)
        self.events = EventBus(self.metadata)
        self.materialized = MaterializedFeatureStore(
            config=config, metadata=self.metadata, events=self.events
        )
        executor = create_executor(config, sources=SourceRegistry(self.metadata), spark=spark)
        self.virtual = VirtualizedFeatureStore(
            query_executor=executor, config=config, metadata=self.metadata, events=self.events
        )

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], *, spark: Any | None = None) -> Workbench:
        """Open the repo a ``tauro.yaml`` (or a Tauro ``global.yaml``) describes.

        Raises:
            ConfigurationError: If the file is missing or invalid.

        Example:
            >>> wb = Workbench.from_config("tauro.yaml")  # doctest: +SKIP
        """
        loaded = FeatureStoreConfig.from_yaml(Path(path))
        return cls(loaded, spark=spark)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Workbench:
        """Open an existing repo (default ``$TAURO_FS_STORAGE_PATH``, else ``./feature_repo``), creating nothing.

        Raises:
            RepositoryNotFoundError: If the folder holds no repo.

        Example:
            >>> Workbench.open("./no_such_repo")  # doctest: +SKIP
            Traceback (most recent call last):
            RepositoryNotFoundError: No feature repository at 'no_such_repo' ...
        """
        return cls(path, create=False)

    # -- the stores ------------------------------------------------------------------------
    @cached_property
    def hybrid(self) -> HybridFeatureStore:
        """The router over the materialized, virtual and online stores."""
        try:
            from tauro_workbench.stores.hybrid import HybridFeatureStore
        except ImportError as err:
            raise ConfigurationError(
                f"mode='hybrid' needs tauro_workbench.stores.hybrid, which failed to import: {err}",
                hint="Use mode='materialized' or 'virtualized' in the config.",
            ) from err
        return HybridFeatureStore(materialized=self.materialized, virtual=self.virtual, config=self.config)

    @property
    def store(self) -> BaseFeatureStore:
        """The store ``config.mode`` selects for reads (hybrid by default).

        ``online`` selects the hybrid store too, with every write synced online: it serves
        online reads from the online store, and historical reads of online-only groups (no
        offline rows, no virtual definition) from the online latest row per entity, as well as
        their ``get_features`` reads that name the entities.
        """
        mode = self.config.mode
        if mode in (FeatureStoreMode.HYBRID, FeatureStoreMode.ONLINE):
            return self.hybrid
        if mode is FeatureStoreMode.VIRTUALIZED:
            return self.virtual
        return self.materialized

    # -- sources and definitions -----------------------------------------------------------
    def add_source(
        self, name: str, location: str | os.PathLike[str] | FrameLike, **options: Any
    ) -> DataSource:
        """Register a Parquet/Delta/CSV source, or an in-memory frame, under a dotted name.

        Raises:
            DataSourceError: For a bad name, an unknown format, or a path holding no data.

        Example:
            >>> wb.add_source("silver.users", "sample_data/silver/users.parquet")  # doctest: +SKIP
        """
        if isinstance(location, (str, os.PathLike)):
            return self.virtual.executor.sources.add(name, location, **options)
        return self.virtual.executor.sources.add_frame(name, location)

    def sources(self) -> list[DataSource]:
        """Return the registered sources, sorted by name."""
        return self.virtual.executor.sources.snapshot()

    def register(self, schema: FeatureGroupSchema) -> FeatureGroupSchema:
        """Register a feature group (an identical re-registration is a no-op).

        Example:
            >>> wb.register(users_schema)  # doctest: +SKIP
        """
        return self.materialized.register_features(schema)

    def define_virtual(
        self,
        group: str,
        *,
        queries: Mapping[str, str] | None = None,
        sql: str | None = None,
        dialect: str | None = None,
    ) -> VirtualDefinition:
        """Define a registered group as SQL: one query for the group, or one per feature.

        Raises:
            ConfigurationError: Unless exactly one of ``queries`` and ``sql`` is given.
            VirtualizationQueryError: For SQL that does not fit the group (see
                :meth:`VirtualizedFeatureStore.define_virtual_features`).

        Example:
            >>> wb.define_virtual("users", sql="SELECT user_id, ts, age FROM silver.users")  # doctest: +SKIP
        """
        if (queries is None) == (sql is None):
            raise ConfigurationError(
                "define_virtual takes exactly one of queries={feature: sql} or sql='...'."
            )
        chosen: Mapping[str, str] | str = sql if sql is not None else queries  # type: ignore[assignment]
        return self.virtual.define_virtual_features(group, chosen, dialect=dialect)

    def infer_schema(
        self,
        frame: FrameLike | str | os.PathLike[str],
        name: str,
        entity_keys: Sequence[str],
        timestamp_key: str | None = None,
        **schema_options: Any,
    ) -> FeatureGroupSchema:
        """Return a group schema inferred from a frame or file (see :func:`infer_schema`)."""
        return infer_schema(frame, name, entity_keys, timestamp_key, **schema_options)

    def feature_view(
        self, name: str, features: Sequence[str] | None = None, *, description: str = ""
    ) -> FeatureView:
        """Save a feature view (with ``features``) or load its latest version (without).

        Saving the same features is a no-op; different ones add a version.

        Raises:
            FeatureNotFoundError: For unknown features, or loading a view never saved.

        Example:
            >>> view = wb.feature_view("churn", ["users.age", "orders.total"])  # doctest: +SKIP
            >>> wb.training_set(labels, view)                                   # doctest: +SKIP
        """
        if features is None:
            return get_feature_view(self.metadata, name)
        return save_feature_view(self.metadata, name, features, description=description)

    # -- writes ----------------------------------------------------------------------------
    def write(
        self,
        group: str,
        data: FrameLike,
        *,
        mode: str = "append",
        write_id: str | None = None,
        on_drift: str | None = None,
    ) -> WriteRecord:
        """Validate and write rows to a group's offline table (one transaction).

        Args:
            group: A registered group.
            data: The rows.
            mode: ``append``, ``overwrite`` or ``merge``.
            write_id: Makes the write idempotent: a second write with the same id changes nothing.
            on_drift: Override of ``drift.on_drift``.

        Example:
            >>> wb.write("users", df, write_id="2024-06-01")  # doctest: +SKIP
        """
        return self.materialized.write_features(group, data, mode, on_drift=on_drift, write_id=write_id)

    def backfill(
        self,
        group: str,
        data: Any,
        *,
        start: datetime | str,
        end: datetime | str,
        write_id: str | None = None,
    ) -> WriteRecord:
        """Replace exactly the ``[start, end)`` event-time window of a group (one transaction).

        Example:
            >>> wb.backfill("users", history, start="2024-01-01", end="2024-02-01")  # doctest: +SKIP
        """
        return self.materialized.backfill(group, data, start=start, end=end, write_id=write_id)

    def promote(
        self, group: str, *, to: Literal["materialized", "online"] = "materialized"
    ) -> PromotionResult:
        """Promote a group: virtual -> materialized (Delta, drift recorded) -> online.

        Idempotent: re-running when nothing changed returns ``changed=False`` and says so.

        Example:
            >>> wb.promote("users", to="online")  # doctest: +SKIP
            PromotionResult(users v1 -> online: changed, rows=100, table_version=1, ...)
        """
        return promote(self.virtual, self.materialized, group, to=to)

    # -- reads -----------------------------------------------------------------------------
    def preview(self, group: str, *, limit: int = 10) -> Preview:
        """Return the first ``limit`` rows of a group: stored rows if written, else computed.

        Example:
            >>> wb.preview("users", limit=5)  # doctest: +SKIP
        """
        schema = self.metadata.get_feature_group(group)
        table = self.materialized._table(schema)
        started = time.perf_counter()
        is_virtual = self.metadata.find_document(VIRTUAL_DEFINITION_KIND, schema.name) is not None
        if table.version() is not None or not is_virtual:
            frame = self.materialized.scan_group(schema.name).head(limit).collect()
            return Preview(
                schema.name, frame, None, "materialized", time.perf_counter() - started, table.format
            )
        result = self.virtual.preview(schema.name, limit=limit)
        return Preview(
            schema.name, result.to_polars(), result.sql, "virtual", result.seconds, self.virtual.executor.name
        )

    def get_features(
        self,
        features: Features,
        *,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        point_in_time: datetime | None = None,
    ) -> pl.LazyFrame:
        """Return the latest value of each feature per entity (as of ``point_in_time``).

        Example:
            >>> wb.get_features(["users.age"], entity_ids={"user_id": [1, 2]}).collect()  # doctest: +SKIP
        """
        return self.store.get_features(_names(features), entity_ids, point_in_time)

    def get_historical_features(
        self, entity_df: FrameLike, features: Features, *, full_feature_names: bool = False
    ) -> pl.LazyFrame:
        """Join features onto ``entity_df`` as of each row's time, across every kind of group.

        One call may mix materialized, virtual and online-only groups; each is read where the
        router sends it and the result is what one store holding them all would return.

        Example:
            >>> wb.get_historical_features(labels, ["users.age", "orders.total"]).collect()  # doctest: +SKIP
        """
        return self.store.get_historical_features(
            entity_df, _names(features), full_feature_names=full_feature_names
        )

    def training_set(
        self, entity_df: FrameLike, features: Features, *, full_feature_names: bool = False
    ) -> TrainingSet:
        """Build a training set: the point-in-time join, plus table versions and match rates.

        Example:
            >>> ts = wb.training_set(labels, view)  # doctest: +SKIP
            >>> ts.match_rate                        # doctest: +SKIP
            {'users': 1.0}
        """
        started = time.perf_counter()
        names = _names(features)
        read = plan_read(self.metadata, names, full_feature_names=full_feature_names)
        versions = {g: self.materialized._table(r.schema).version() for g, r in read.groups.items()}
        frame = self.get_historical_features(
            entity_df, names, full_feature_names=full_feature_names
        ).collect()
        rates: dict[str, float] = {}
        for group, request in read.groups.items():
            if frame.height == 0:
                rates[group] = 0.0
                continue
            hit = pl.any_horizontal([pl.col(c).is_not_null() for c in request.outputs])
            rates[group] = float(frame.select(hit.mean()).item())
        qualified = tuple(f"{r.schema.name}.{f}" for r in read.groups.values() for f in r.features)
        return TrainingSet(frame, qualified, versions, rates, time.perf_counter() - started)

    def get_online_features(
        self, features: Features, *, entity_keys: Mapping[str, Any]
    ) -> dict[str, Any] | pl.DataFrame:
        """Return the latest live values: a dict for one entity, a DataFrame for key lists.

        Example:
            >>> wb.get_online_features(["users.age"], entity_keys={"user_id": 1})  # doctest: +SKIP
            {'age': 31}
        """
        if type(features) is FeatureView:
            features = list(features.features)
        return self._online_read(features, entity_keys)  # type: ignore[no-any-return]

    @cached_property
    def _online_read(self) -> Any:
        # bound once: an in-memory online read takes microseconds, so the verb stays one call
        routed = self.config.mode in (FeatureStoreMode.HYBRID, FeatureStoreMode.ONLINE)
        store: Any = self.hybrid if routed else self.materialized
        return store.get_online_features

    def explain(
        self,
        features: Features,
        *,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        point_in_time: datetime | None = None,
    ) -> Route | dict[str, Route]:
        """Return where the hybrid router would read each group from, and why (reads nothing).

        Example:
            >>> wb.explain(["users.age"])  # doctest: +SKIP
        """
        return self.hybrid.explain(_names(features), entity_ids, point_in_time)

    # -- insight ---------------------------------------------------------------------------
    def groups(self) -> list[FeatureGroupSchema]:
        """Return the latest version of every registered group, sorted by name."""
        return [self.metadata.get_feature_group(n) for n in self.metadata.list_feature_groups()]

    def get_group(self, name: str, version: int | None = None) -> FeatureGroupSchema:
        """Return a group's schema (latest version when None).

        Raises:
            FeatureGroupNotFoundError: For an unknown group or version.
        """
        return self.metadata.get_feature_group(name, version)

    def features(self, group: str | None = None) -> pl.DataFrame:
        """Return one row per feature: group, version, feature, data_type, feature_type, description."""
        schemas = [self.get_group(group)] if group is not None else self.groups()
        rows = [
            {
                "group": s.name,
                "version": s.version,
                "feature": f.name,
                "data_type": str(f.spec),
                "feature_type": None
                if f.feature_type is None
                else getattr(f.feature_type, "value", str(f.feature_type)),
                "description": f.description,
            }
            for s in schemas
            for f in s.features
        ]
        columns = {
            "group": pl.String,
            "version": pl.Int64,
            "feature": pl.String,
            "data_type": pl.String,
            "feature_type": pl.String,
            "description": pl.String,
        }
        return pl.DataFrame(rows, schema=columns)

    def lineage(self, name: str, *, upstream: int = 3, downstream: int = 3) -> LineageGraph:
        """Return the lineage around a group, feature, source or view.

        Example:
            >>> print(wb.lineage("users").to_text())  # doctest: +SKIP
        """
        from tauro_workbench.lineage_graph import LineageGraph

        return LineageGraph.from_registry(self.metadata, name, upstream=upstream, downstream=downstream)

    def drift(self, group: str) -> DriftReport | None:
        """Return the latest drift report of a group (None before its first profiled write)."""
        self.metadata.get_feature_group(group)
        reports = self.materialized.monitor.reports(group)
        return reports[-1] if reports else None

    def history(self, group: str | None = None, *, limit: int = 50) -> list[WriteRecord]:
        """Return the newest ``limit`` writes (of one group, or all), oldest first.

        The history is reconciled with the table logs first (commits the registry missed are
        recorded), as :meth:`MaterializedFeatureStore.list_writes` does.
        """
        names = [group] if group is not None else self.metadata.list_feature_groups()
        records = [r for n in names for r in self.materialized.list_writes(n, limit=limit)]
        return sorted(records, key=lambda r: r.id)[-limit:]

    def health_check(self) -> HealthReport:
        """Probe the registry, storage (writable), executor and online store (ping).

        Returns:
            A report, truthy only when every component is healthy; each failed one is named
            with its error in ``details``.

        Example:
            >>> report = wb.health_check()  # doctest: +SKIP
            >>> bool(report), report.details  # doctest: +SKIP
            (True, {})
        """
        checks: dict[str, bool] = {}
        details: dict[str, str] = {}

        def probe(name: str, fn: Any) -> None:
            try:
                problem = fn()
            except Exception as err:  # a health check reports, never raises
                problem = f"{type(err).__name__}: {err}"
            checks[name] = problem is None
            if problem is not None:
                details[name] = problem

        probe("registry", self._probe_registry)
        probe("storage", self._probe_storage)
        probe("executor", self._probe_executor)
        if self.config.enable_online_store or self.config.sync_to_online:
            probe("online", self._probe_online)
        return HealthReport(checks=checks, details=details)

    def _probe_registry(self) -> str | None:
        if self.metadata.health_check():
            return None
        return f"the registry {self.metadata.location!r} does not answer"

    def _probe_storage(self) -> str | None:
        root = self.config.offline_path
        probe = root / f".tauro_health_{uuid.uuid4().hex}"
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
        return None

    def _probe_executor(self) -> str | None:
        self.virtual.executor.execute("SELECT 1 AS ok").collect()
        return None

    def _probe_online(self) -> str | None:
        online: Any = self.materialized.online
        ping = getattr(online, "ping", None)
        if ping is not None:
            ping()
            return None
        return None if online.health_check() else f"the {online.kind} online store does not answer"

    def browse(self) -> Any:
        """Return the notebook browser of this repo (needs the ``notebook`` extra)."""
        from tauro_workbench import notebook

        return notebook.browse(self)  # type: ignore[attr-defined]

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Release the executor, the online store and the registry."""
        if "hybrid" in self.__dict__:
            self.hybrid.close()
        self.virtual.executor.close()
        online = self.materialized._online_store
        if online is not None:
            online.close()
        self.metadata.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Workbench(path={str(self.path)!r}, mode={self.config.mode.value!r}, "
            f"executor={self.config.virtualized.executor_type!r}, online={self.config.online_store.type!r})"
        )


def _names(features: Features) -> list[str] | str:
    if isinstance(features, FeatureView):
        return list(features.features)
    if isinstance(features, str):
        return features
    return list(features)
