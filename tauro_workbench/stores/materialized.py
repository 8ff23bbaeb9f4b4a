"""MaterializedFeatureStore: feature groups stored as Delta Lake (or Parquet) tables.

Layout: ``<config.offline_path>/<group>/v<version>/`` holds one table per group version
(:meth:`MaterializedFeatureStore.table_uri`). Tables hold the group's columns plus hidden ones
(see :mod:`tauro_workbench.stores.offline_table`):

- ``_tauro_seq`` (Int64): ``(write number << 32) | row index``; greater means written later. It
  is the last point-in-time tie-breaker, after the event time and the created time.
- ``_tauro_date`` (Date, only with ``materialized.partition_by_date``): the partition column.

Files committed by other engines (e.g. Spark) may lack ``_tauro_seq``; their rows then lose
ties to rows written here (null sorts first).

Every read records what it read in :attr:`MaterializedFeatureStore.last_read_info` (a
:class:`ReadInfo`: table versions, plan, timing, cache hit), so a training set can be rebuilt
exactly with ``as_of=info.table_versions``. Results of :meth:`get_features` are cached (bounded by
``materialized.cache_size_mb``) under keys holding the table versions read, so a write is never
followed by a stale read.

Example:
    >>> store = MaterializedFeatureStore(storage_path="./feature_repo")  # doctest: +SKIP
    >>> store.register_features(user_features)                          # doctest: +SKIP
    >>> store.write_features("user_features", df)                       # doctest: +SKIP
    >>> store.get_features(["age"], entity_ids={"user_id": [1, 2]}).collect()  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from loguru import logger

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.engines.pit import point_in_time_join
from tauro_workbench.exceptions import (
    FeatureMaterializationError,
    FeatureNotFoundError,
    FeatureStoreWarning,
    MetadataError,
    StoragePathError,
)
from tauro_workbench.frames import FrameLike, to_lazyframe, to_utc
from tauro_workbench.monitoring.events import EventBus
from tauro_workbench.monitoring.monitor import WriteMonitor
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.retrieval import plan_read
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.schema import FeatureGroupSchema, validate_identifier
from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND, BaseFeatureStore, HealthReport
from tauro_workbench.stores.commit_lock import storage_error
from tauro_workbench.stores.latest_values import (
    GroupRead,
    apply_ttl,
    join_latest,
    latest_values,
    window_filter,
)
from tauro_workbench.stores.offline_table import (
    SEQ_COLUMN,
    AsOf,
    OfflineTable,
    open_offline_table,
)
from tauro_workbench.stores.online_serving import OnlineServingMixin
from tauro_workbench.stores.reconcile import (
    reconcile_table,
)
from tauro_workbench.stores.result_cache import ResultCache, frame_digest
from tauro_workbench.stores.table_management import TableManagementMixin
from tauro_workbench.stores.table_writes import TableWritesMixin

__all__ = ["MaterializedFeatureStore", "ReadInfo"]

AsOfArg = int | datetime | Mapping[str, int | datetime | None] | None


@dataclass(frozen=True)
class ReadInfo:
    """What one read used: table versions, plan and timing.

    Attributes:
        operation: ``get_features``, ``get_historical_features`` or ``scan_group``.
        table_versions: Group name -> table version read (None: the table did not exist).
        group_versions: Group name -> schema version read.
        plan: The Polars plan of the result (unoptimized).
        seconds: Wall time of the call (planning only for lazy results).
        cached: True when the result came from the result cache.
    """

    operation: str
    table_versions: dict[str, int | None]
    group_versions: dict[str, int]
    plan: str = field(repr=False)
    seconds: float
    cached: bool = False


class MaterializedFeatureStore(TableWritesMixin, TableManagementMixin, OnlineServingMixin, BaseFeatureStore):
    """Feature groups written to Delta (or Parquet) tables; point-in-time reads and time travel.

    Args:
        context: None, a dict of options, or a Tauro context with ``feature_store_path`` /
            ``feature_store_config`` attributes.
        storage_path: Root folder of the store (wins over ``context`` and ``config``).
        storage_format: ``"delta"`` or ``"parquet"``; default: the config's (``delta``).
        config: A :class:`FeatureStoreConfig` or dict of options.
        metadata: A registry to share (default ``<storage_path>/registry.db``).
        events: An event bus to share.

    Example:
        >>> store = MaterializedFeatureStore(storage_path="/tmp/fs", storage_format="parquet")  # doctest: +SKIP
    """

    def __init__(
        self,
        context: Any = None,
        *,
        storage_path: str | Path | None = None,
        storage_format: Literal["delta", "parquet"] | None = None,
        config: FeatureStoreConfig | Mapping[str, Any] | None = None,
        metadata: FeatureStoreMetadata | None = None,
        events: EventBus | None = None,
    ) -> None:
        try:
            super().__init__(
                context, config=config, storage_path=storage_path, metadata=metadata, events=events
            )
        except OSError as err:  # the registry's folder could not be created
            raise storage_error(
                getattr(getattr(self, "config", None), "storage_path", storage_path), err
            ) from err
        except MetadataError as err:  # e.g. "unable to open database file" in a read-only folder
            folder = Path(self.config.storage_path)
            if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
                raise StoragePathError(folder, "the folder is not writable by this process") from err
            raise
        if storage_format is not None:
            self.config = self.config.with_options(materialized={"storage_format": storage_format})
        self.storage_format = self.config.offline_format
        self.monitor = WriteMonitor(self.metadata, self.config.drift, self.events)
        self.retry = RetryPolicy.from_config(self.config)
        mb = self.config.materialized.cache_size_mb if self.config.materialized.cache_enabled else 0
        self.cache = ResultCache(mb * 1024 * 1024)
        self.last_read_info: ReadInfo | None = None
        self._tables: dict[tuple[str, int], OfflineTable] = {}

    # -- tables ---------------------------------------------------------------------------
    def table_uri(self, feature_group: str, version: int | None = None) -> str:
        """Return the absolute path of a group version's table (latest version when None).

        Example:
            >>> store.table_uri("user_features")  # doctest: +SKIP
            '/repo/user_features/v1'
        """
        return self._table(self.metadata.get_feature_group(feature_group, version)).uri

    def _table(self, schema: FeatureGroupSchema) -> OfflineTable:
        key = (schema.name, schema.version)
        table = self._tables.get(key)
        if table is None:
            name = validate_identifier(schema.name, "Feature group name")
            path = self.config.offline_path / name / f"v{schema.version}"
            table = open_offline_table(
                path,
                self.storage_format,
                retry=self.retry,
                lock_timeout_seconds=self.config.lock_timeout_seconds,
            )
            self._tables[key] = table
            try:  # on open: record commits a crashed or refused write left unrecorded
                reconcile_table(self.metadata, schema, table, online_pending=self.config.sync_to_online)
            except MetadataError as err:
                logger.warning("could not reconcile {} v{} yet: {}", schema.name, schema.version, err)
        return table

    def _scan_at(self, schema: FeatureGroupSchema, table_version: int | None) -> pl.LazyFrame:
        """Return the group's table at ``table_version`` (an empty typed frame if none)."""
        scan = self._table(schema).scan(table_version)
        if scan is not None:
            return scan
        if self.metadata.find_document(VIRTUAL_DEFINITION_KIND, schema.name) is not None:
            raise FeatureMaterializationError(
                f"Feature group {schema.name!r} is virtual and has not been materialized, so the "
                "materialized store has no data for it.",
                hint="Read it through a VirtualizedFeatureStore, or materialize it first with "
                "VirtualizedFeatureStore.materialize(group, target=this_store).",
            )
        self._warn_if_older_version_has_data(schema)
        types = {c: schema.polars_schema().get(c, pl.Int64()) for c in schema.columns}
        return pl.LazyFrame(schema={**types, SEQ_COLUMN: pl.Int64()})

    def _warn_if_older_version_has_data(self, schema: FeatureGroupSchema) -> None:
        """Warn when a read of an empty group version would hide the data of an older version."""
        older = [
            v
            for v in self.metadata.list_versions(schema.name)
            if v < schema.version and self._table(self.metadata.get_feature_group(schema.name, v)).exists()
        ]
        if older:
            warnings.warn(
                f"Feature group {schema.name!r} v{schema.version} has no data yet, so this read "
                f"returns nulls, while v{max(older)} has data. Write or backfill v{schema.version} "
                f"(e.g. store.write_features({schema.name!r}, frame)), or read v{max(older)} by "
                "registering requests against that version.",
                FeatureStoreWarning,
                stacklevel=3,
            )

    def _versions(self, schemas: Mapping[str, FeatureGroupSchema], as_of: AsOfArg) -> dict[str, int | None]:
        versions: dict[str, int | None] = {}
        for name, schema in schemas.items():
            point: AsOf = as_of.get(name) if isinstance(as_of, Mapping) else as_of
            if isinstance(point, datetime):
                point = to_utc(point)
            versions[name] = self._table(schema).resolve_version(point)
        return versions

    # -- reads ----------------------------------------------------------------------------
    def scan_group(
        self,
        feature_group: str,
        *,
        version: int | None = None,
        as_of: int | datetime | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.LazyFrame:
        """Return a group's stored rows lazily, optionally as of an earlier table version.

        Args:
            feature_group: A registered group.
            version: Schema version of the group (latest when None).
            as_of: Table version (int) or instant (datetime) to read; latest when None.
            start: Keep event times >= start (naive = UTC).
            end: Keep event times < end.
            columns: Columns to return (hidden ``_tauro_seq`` / ``_tauro_date`` may be named);
                default: the group's columns.

        Returns:
            A LazyFrame pinned to the table version recorded in :attr:`last_read_info`.

        Raises:
            PointInTimeError: For an unknown table version, a window on a group without event
                time, or time travel on a Parquet table.
            FeatureNotFoundError: For an unknown column.

        Example:
            >>> store.scan_group("user_features", as_of=3).collect()  # doctest: +SKIP
        """
        started = time.perf_counter()
        schema = self.metadata.get_feature_group(feature_group, version)
        table_version = self._versions({schema.name: schema}, as_of)[schema.name]
        lf = self._scan_at(schema, table_version)
        available = lf.collect_schema()
        wanted = list(columns) if columns is not None else schema.columns
        unknown = [c for c in wanted if c not in available]
        if unknown:
            raise FeatureNotFoundError(
                unknown[0],
                candidates=list(available),
                reason=f"Group {schema.name!r} has no column {unknown[0]!r}.",
            )
        if start is not None or end is not None:
            lf = lf.filter(window_filter(schema, available, start, end))
        lf = lf.select(wanted)
        self._record_read("scan_group", {schema.name: schema}, {schema.name: table_version}, lf, started)
        return lf

    def get_features(
        self,
        feature_names: Sequence[str] | str,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        point_in_time: datetime | None = None,
        *,
        as_of: AsOfArg = None,
        full_feature_names: bool = False,
    ) -> pl.LazyFrame:
        """Return the latest value of each feature per entity (as of ``point_in_time``).

        Args:
            feature_names: ``group.feature`` or bare names (see :mod:`tauro_workbench.retrieval`).
            entity_ids: ``{"user_id": [1, 2]}`` or a frame of key columns; composite keys are
                matched as tuples. None: every entity with a live value.
            point_in_time: Read as of this instant (naive = UTC); ttl counts back from it
                (from now when None).
            as_of: Table version or datetime per group (a mapping) or for all groups.
            full_feature_names: Output ``group__feature`` columns.

        Returns:
            Entity keys then features; with ``entity_ids``, one row per requested id, in
            order, nulls where nothing is known (see :mod:`tauro_workbench.stores.latest_values`).

        Raises:
            FeatureNotFoundError: For unknown or ambiguous names.
            PointInTimeError: For malformed entity ids.

        Example:
            >>> store.get_features(["age"], entity_ids={"user_id": [1, 2]}).collect()  # doctest: +SKIP
        """
        started = time.perf_counter()
        read = plan_read(
            self.metadata, feature_names, entity_ids=entity_ids, full_feature_names=full_feature_names
        )
        schemas, ids, outputs = read.schemas, read.ids, read.outputs
        when = to_utc(point_in_time) if point_in_time is not None else None
        versions = self._versions(schemas, as_of)
        # The table id too: a group deleted and registered again (by any process) restarts its
        # table versions, and must not be served what was cached for the old table.
        cache_key = (
            "get_features",
            tuple(
                (g, s.version, versions[g], self._table(s).table_id(), tuple(outputs[g]))
                for g, s in schemas.items()
            ),
            tuple(f for r in read.groups.values() for f in r.features),
            when,
            None if ids is None else frame_digest(ids),
        )
        result = self.cache.get(cache_key)
        cached = result is not None
        if result is None:
            reads = [
                GroupRead(s, self._scan_at(s, versions[g]), read.groups[g].features, tuple(outputs[g]))
                for g, s in schemas.items()
            ]
            plan = latest_values(reads, ids, when)
            logger.opt(lazy=True).debug("get_features plan:\n{}", plan.explain)
            if self.cache.max_bytes > 0:
                result = plan.collect()
                self.cache.put(cache_key, result)
                lf = result.lazy()
            else:
                lf = plan
        else:
            lf = result.lazy()
        lf = apply_ttl(lf, schemas, outputs, when, every_entity=ids is None)
        self._record_read("get_features", schemas, versions, lf, started, cached=cached)
        return lf

    def get_historical_features(
        self,
        entity_df: FrameLike,
        feature_names: Sequence[str] | str,
        *,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
        as_of: AsOfArg = None,
        engine: Literal["polars", "duckdb"] = "polars",
    ) -> pl.LazyFrame:
        """Join features onto ``entity_df`` as of each row's time (a point-in-time join).

        One output row per input row, in input order, every input column kept; per group the
        winner is the latest row with ``event_time <= t`` (and ``>= t - ttl``), ties broken by
        the created time, then by write order (``_tauro_seq``). Groups without an event time
        contribute their latest row per entity.

        Args:
            entity_df: Rows with every entity key of the requested groups and a time column.
            feature_names: Features to add.
            full_feature_names: Output ``group__feature`` columns.
            timestamp_column: The entity time column (default: see
                :func:`tauro_workbench.retrieval.resolve_timestamp_column`).
            as_of: Table version or datetime per group (mapping) or for all groups, to rebuild
                a training set exactly (see :attr:`last_read_info`).
            engine: Point-in-time join engine.

        Returns:
            ``entity_df``'s columns then the features.

        Raises:
            PointInTimeError: For a missing key or time column, or a name clash.

        Example:
            >>> store.get_historical_features(labels, ["user_features.age"]).collect()  # doctest: +SKIP
        """
        started = time.perf_counter()
        entity = to_lazyframe(entity_df)
        read = plan_read(
            self.metadata,
            feature_names,
            entity_df=entity,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
        )
        assert read.time_column is not None
        schemas = read.schemas
        versions = self._versions(schemas, as_of)
        out = entity
        for name, request in read.groups.items():
            scan = self._scan_at(request.schema, versions[name])
            spec = request.pit_spec(read.time_column, seq_column=SEQ_COLUMN)
            if spec is None:
                out = join_latest(out, scan, request.schema, request.features, request.outputs)
                continue
            rows = self._table(request.schema).row_count(versions[name])
            out = point_in_time_join(out, scan, spec, engine=engine, feature_rows=rows)
        self._record_read("get_historical_features", schemas, versions, out, started)
        return out

    def _record_read(
        self,
        operation: str,
        schemas: Mapping[str, FeatureGroupSchema],
        versions: Mapping[str, int | None],
        lf: pl.LazyFrame,
        started: float,
        *,
        cached: bool = False,
    ) -> None:
        self.last_read_info = ReadInfo(
            operation=operation,
            table_versions=dict(versions),
            group_versions={g: s.version for g, s in schemas.items()},
            plan=lf.explain(optimized=False),
            seconds=time.perf_counter() - started,
            cached=cached,
        )

    def health_check(self) -> HealthReport:
        """Check the registry, that the offline folder is writable and the online store (if used)."""
        checks = {"registry": self.metadata.health_check()}
        details: dict[str, str] = {}
        root = self.config.offline_path
        probe = root / f".tauro_health_{uuid.uuid4().hex}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
            checks["offline_storage"] = True
        except OSError as err:
            checks["offline_storage"] = False
            details["offline_storage"] = f"{root} is not writable: {err}"
        self._check_online(checks, details)  # a dead Redis makes the report unhealthy
        return HealthReport(checks=checks, details=details)
