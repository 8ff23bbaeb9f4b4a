"""VirtualizedFeatureStore: features defined as SQL over sources, computed on demand.

A virtual group is defined by one SQL query for the whole group, or one query per feature
(joined on the entity keys, the event time and the created time with a full outer join). Every
query is validated when defined (it parses, reads only registered sources, returns the keys,
the group's time columns and the declared features with losslessly castable types), stored in
the registry as a ``virtual_definition`` document, and its lineage (source -> group.feature) is
recorded.

Reads run the query with the requested entities as a registered relation and the time bounds
as bound parameters — user values never enter the SQL text. Both filters are pushed by sqlglot
into the SELECTs that read the sources where that provably keeps the result
(:mod:`tauro_workbench.engines.sql_pushdown`), so a ``GROUP BY user_id`` aggregates only the
requested entities; elsewhere they filter the query's output. Reads then apply the
same latest-value and point-in-time rules as the materialized store (the result's row order
plays the role of the write order). On Spark the point-in-time join runs as Spark window
functions. SQL dialects: see :mod:`tauro_workbench.engines.sql_dialect`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from loguru import logger

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.engines import DISTRIBUTED_PIT, create_executor, has_capability
from tauro_workbench.engines.base import QueryExecutor, QueryResult, strip_context
from tauro_workbench.engines.pit import PointInTimeSpec, point_in_time_join
from tauro_workbench.engines.sql_dialect import (
    check_dialect,
    check_reads,
    parse_query,
    quote,
    referenced_tables,
)
from tauro_workbench.exceptions import (
    FeatureMaterializationError,
    FeatureStoreException,
    PointInTimeError,
    QueryTimeoutError,
    SourceSchemaDriftError,
    VirtualizationQueryError,
)
from tauro_workbench.frames import FrameLike, to_dataframe, to_utc, utc_datetime_expr
from tauro_workbench.monitoring.events import EventBus
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.retrieval import entity_frame, plan_read
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.stores.base import BaseFeatureStore, HealthReport
from tauro_workbench.stores.latest_values import GroupRead, apply_ttl, latest_values
from tauro_workbench.stores.offline_table import SEQ_COLUMN
from tauro_workbench.stores.result_cache import ResultCache, frame_digest
from tauro_workbench.stores.virtual_sql import (
    DOCUMENT_KIND,
    IDS_TOKEN,
    LOWER_PARAM,
    UPPER_PARAM,
    WHOLE_GROUP,
    Bounds,
    GroupPlan,
    VirtualDefinition,
    build_group_plan,
)
from tauro_workbench.stores.virtual_types import result_fit, result_spec, type_result

if TYPE_CHECKING:
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

__all__ = ["VirtualDefinition", "VirtualizedFeatureStore"]


def _build_executor(
    context: Any, config: FeatureStoreConfig, metadata: FeatureStoreMetadata
) -> QueryExecutor:
    from tauro_workbench.sources import SourceRegistry

    given = context.get("sources") if isinstance(context, Mapping) else getattr(context, "sources", None)
    sources = SourceRegistry.of(given)
    sources.attach(metadata)
    spark = context.get("spark") if isinstance(context, Mapping) else getattr(context, "spark", None)
    return create_executor(config, sources=sources, spark=spark)


class VirtualizedFeatureStore(BaseFeatureStore):
    """Feature groups computed on demand from SQL over registered sources.

    Args:
        context: None, a dict, or a Tauro context object (``sources``, ``spark``,
            ``feature_store_config``, ``feature_store_path``; see :mod:`tauro_workbench.engines.base`).
        query_executor: The engine; default per ``config.virtualized.executor_type``.
        config: A :class:`FeatureStoreConfig` or dict of options.
        storage_path: Root folder of the store (holds ``registry.db``); wins over ``config``.
        metadata: A registry to share.
        events: An event bus to share.

    Example:
        >>> store = VirtualizedFeatureStore(query_executor=DuckDBQueryExecutor())  # doctest: +SKIP
    """

    def __init__(
        self,
        context: Any = None,
        *,
        query_executor: QueryExecutor | None = None,
        config: FeatureStoreConfig | Mapping[str, Any] | None = None,
        storage_path: str | Path | None = None,
        metadata: FeatureStoreMetadata | None = None,
        events: EventBus | None = None,
    ) -> None:
        super().__init__(
            strip_context(context), config=config, storage_path=storage_path, metadata=metadata, events=events
        )
        self.context = context
        if query_executor is None:
            query_executor = _build_executor(context, self.config, self.metadata)
        else:
            query_executor.sources.attach(self.metadata)
        self.executor: QueryExecutor = query_executor
        mb = self.config.materialized.cache_size_mb if self.config.virtualized.enable_caching else 0
        self.cache = ResultCache(mb * 1024 * 1024)
        self._schemas: dict[tuple[str, int, str], pl.Schema] = {}
        self._plans: dict[tuple[Any, ...], GroupPlan] = {}

    # -- definitions ----------------------------------------------------------------------
    def add_source(self, name: str, location: str, **options: Any) -> Any:
        """Register a Parquet, Delta or CSV source (see :meth:`SourceRegistry.add`)."""
        return self.executor.sources.add(name, location, **options)

    def define_virtual_features(
        self,
        feature_group: str,
        queries: Mapping[str, str] | str,
        *,
        dialect: str | None = None,
    ) -> VirtualDefinition:
        """Define a group's features as SQL, validated now, stored with lineage in the registry.

        Args:
            feature_group: A registered group.
            queries: One SQL for the whole group, or ``{feature: sql}``. Each query returns the
                entity keys, the group's event (and created) time, and its feature column(s).
            dialect: ``"duckdb"`` or ``"spark"``; default the executor's.

        Returns:
            The stored definition.

        Raises:
            FeatureGroupNotFoundError: If the group is not registered.
            VirtualizationQueryError: For SQL that does not parse, reads unknown tables, lacks a
                required column or returns an incompatible type (the query is quoted).

        Example:
            >>> store.define_virtual_features("user_features", {"age": "SELECT user_id, age FROM silver.users"})  # doctest: +SKIP
        """
        schema = self.metadata.get_feature_group(feature_group)
        read = check_dialect(dialect or self.executor.dialect)
        mapping = {WHOLE_GROUP: queries} if isinstance(queries, str) else dict(queries)
        if not mapping:
            raise VirtualizationQueryError(f"No queries given for group {feature_group!r}.")
        used: set[str] = set()
        result_types: dict[str, str] = {}
        for feature, sql in mapping.items():
            if feature != WHOLE_GROUP and feature not in schema.feature_names:
                raise VirtualizationQueryError(
                    f"Group {feature_group!r} has no feature {feature!r}; features: {schema.feature_names}.",
                    query=sql,
                )
            expected = schema.feature_names if feature == WHOLE_GROUP else [feature]
            tables, result = self._validate(schema, sql, read, expected)
            used.update(tables)
            for column in [*schema.entity_keys, *schema.time_columns, *expected]:
                result_types.setdefault(column, str(result[column]))
        # what the sources looked like, so a read can name the column that changed since
        source_types = {n: {c: str(t) for c, t in self._source_schema(n).items()} for n in sorted(used)}
        definition = VirtualDefinition(
            schema.name, schema.version, read, mapping, tuple(sorted(used)), result_types, source_types
        )
        self.metadata.put_document(DOCUMENT_KIND, schema.name, definition.to_document())
        for feature in schema.feature_names:
            sql_of = mapping.get(feature, mapping.get(WHOLE_GROUP))
            if sql_of is not None:
                tables = referenced_tables(parse_query(sql_of, read))
                self.metadata.set_lineage(f"{schema.name}.{feature}", tables)
        self._schemas = {k: v for k, v in self._schemas.items() if k[0] != schema.name}
        self._plans = {k: v for k, v in self._plans.items() if k[0] != schema.name}
        logger.info(
            "defined virtual group {} ({} queries, sources {})", schema.name, len(mapping), sorted(used)
        )
        return definition

    def _validate(
        self, schema: FeatureGroupSchema, sql: str, dialect: str, features: list[str]
    ) -> tuple[list[str], pl.Schema]:
        """Return the sources ``sql`` reads and its result schema, once it fits the group."""
        # one SELECT over registered sources only: no table functions, file paths, settings
        tables = check_reads(
            parse_query(sql, dialect), self.executor.sources.names(), query=sql, dialect=dialect
        )
        result = self.executor.schema(sql, dialect=dialect)
        problems = []
        for column in [*schema.entity_keys, *schema.time_columns, *features]:
            if column not in result:
                problems.append(f"it does not return column {column!r}")
                continue
            spec = result_spec(schema, column, result[column])
            if result_fit(result[column], spec) is None:
                problems.append(
                    f"column {column!r} is {result[column]} but {spec} is declared "
                    "(no lossless cast or value-checked narrowing; cast it in the SQL)"
                )
        if problems:
            raise VirtualizationQueryError(
                f"The query does not fit group {schema.name!r}: "
                + "; ".join(problems)
                + f". It returns {dict(result)}.",
                query=sql,
            )
        return tables, result

    def _source_schema(self, source: str) -> pl.Schema:
        """Return the columns of ``source`` as the executor reads them (no rows computed)."""
        dialect = self.executor.dialect
        name = ".".join(quote(part, dialect) for part in source.split("."))
        return self.executor.schema(f"SELECT * FROM {name}", dialect=dialect)

    def _drift(
        self, schema: FeatureGroupSchema, misfits: Mapping[str, pl.DataType], cause: str
    ) -> SourceSchemaDriftError | None:
        """Return the error naming each source column whose type changed since the definition.

        Without a recorded change, the misfit result columns are named instead (None if none).
        """
        definition = self.get_definition(schema.name)
        changes = []
        for source, before in definition.source_types.items():
            try:
                now = {c: str(t) for c, t in self._source_schema(source).items()}
            except FeatureStoreException:  # the source is gone or unreadable
                now = {}
            changes += [
                (f"{source}.{c}", old, now.get(c, "missing"))
                for c, old in before.items()
                if now.get(c) != old
            ]
        if not changes:
            changes = [
                (f"{schema.name}.{c}", definition.result_types.get(c, str(schema.column_spec(c))), str(t))
                for c, t in misfits.items()
            ]
        return SourceSchemaDriftError(schema.name, changes, cause=cause) if changes else None

    def get_definition(self, feature_group: str) -> VirtualDefinition:
        """Return the virtual definition of a group.

        Raises:
            VirtualizationQueryError: If the group has no virtual definition.
        """
        doc = self.metadata.find_document(DOCUMENT_KIND, feature_group)
        if doc is None:
            known = sorted(self.metadata.list_documents(DOCUMENT_KIND))
            raise VirtualizationQueryError(
                f"Group {feature_group!r} has no virtual definition. Virtual groups: {known or '(none)'}.",
                hint="Call define_virtual_features(group, queries) first.",
            )
        return VirtualDefinition.from_document(doc)

    def list_virtual_groups(self) -> list[str]:
        """Return the groups with a virtual definition, sorted."""
        return sorted(self.metadata.list_documents(DOCUMENT_KIND))

    # -- SQL building ---------------------------------------------------------------------
    def group_sql(self, schema: FeatureGroupSchema, features: Sequence[str] | None = None) -> str:
        """Return the group's query in the executor's dialect: keys, times, then ``features``."""
        return self._plan(schema, features, Bounds(False, False, False)).sql

    def _plan(self, schema: FeatureGroupSchema, features: Sequence[str] | None, bounds: Bounds) -> GroupPlan:
        """Return the group's query with the requested filters pushed in (cached per shape)."""
        definition = self.get_definition(schema.name)
        key = (
            schema.name,
            schema.version,
            definition.dialect,
            tuple(sorted(definition.queries.items())),
            None if features is None else tuple(features),
            bounds,
        )
        plan = self._plans.get(key)
        if plan is None:
            plan = build_group_plan(schema, definition, features, bounds, dialect=self.executor.dialect)
            self._plans[key] = plan
        return plan

    def _pushdown(
        self,
        schema: FeatureGroupSchema,
        features: Sequence[str] | None,
        ids: pl.DataFrame | None,
        lower: datetime | None,
        upper: datetime | None,
    ) -> tuple[str, dict[str, Any], dict[str, pl.DataFrame]]:
        """Return the filtered group query, its bound time limits and the ids relation."""
        bounds = Bounds(
            ids is not None,
            lower is not None and schema.timestamp_key is not None,
            upper is not None and schema.timestamp_key is not None,
        )
        sql = self._plan(schema, features, bounds).sql
        params: dict[str, Any] = {}
        frames: dict[str, pl.DataFrame] = {}
        if bounds.lower:
            params[LOWER_PARAM] = lower
        if bounds.upper:
            params[UPPER_PARAM] = upper
        if ids is not None:
            # a fresh name per call: Spark's temporary views are shared by concurrent readers
            name = f"tauro_ids_{uuid.uuid4().hex}"
            # duplicates are harmless: the ids are only ever used as a semi-join (IN / EXISTS)
            frames[name] = self._typed_ids(schema, ids.select(schema.entity_keys))
            sql = sql.replace(IDS_TOKEN, name)
        return sql, params, frames

    def _result_schema(self, schema: FeatureGroupSchema, sql: str) -> pl.Schema:
        key = (schema.name, schema.version, sql)
        if key not in self._schemas:
            self._schemas[key] = self.executor.schema(sql)
        return self._schemas[key]

    def _typed_ids(self, schema: FeatureGroupSchema, ids: pl.DataFrame) -> pl.DataFrame:
        sql = self.group_sql(schema)
        types = self._result_schema(schema, sql)
        try:
            return ids.select([pl.col(k).cast(types[k]) for k in schema.entity_keys])
        except pl.exceptions.PolarsError as err:
            wanted = {k: str(types[k]) for k in schema.entity_keys}
            raise PointInTimeError(
                f"entity ids of group {schema.name!r} do not fit the key types {wanted}: {err}",
                hint="Pass ids of the key's type (e.g. integers for integer keys).",
            ) from err

    def _run(
        self,
        sql: str,
        params: dict[str, Any],
        frames: dict[str, pl.DataFrame],
        *,
        schema: FeatureGroupSchema | None = None,
    ) -> pl.DataFrame:
        try:
            return self._run_cached(sql, params, frames)
        except QueryTimeoutError:
            raise
        except VirtualizationQueryError as err:
            # e.g. SUM over a column that became a string: name the source column that changed
            drift = None if schema is None else self._drift(schema, {}, cause=err.message.split("\n")[0])
            if drift is None:
                raise
            raise drift from err

    def _run_cached(self, sql: str, params: dict[str, Any], frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
        if self.cache.max_bytes <= 0:
            return self.executor.execute(sql, params, frames=frames).collect()
        # frame names are random; the key uses their contents instead
        key = (
            self.executor.name,
            _normalise(sql, frames),
            tuple(sorted((k, str(v)) for k, v in params.items())),
            tuple(frame_digest(f) for f in frames.values()),
            tuple(sorted(self.executor.sources.fingerprints().items())),
        )
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        result = self.executor.execute(sql, params, frames=frames).collect()
        self.cache.put(key, result)
        return result

    def compute_group(
        self,
        feature_group: str,
        features: Sequence[str] | None = None,
        *,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        """Compute a virtual group's rows (typed as declared), optionally filtered.

        Args:
            feature_group: The group.
            features: Features to compute (default: every defined one).
            entity_ids: Only these entities (bound as a relation, never as SQL text).
            start: Only rows with event time >= start.
            end: Only rows with event time <= end.
        """
        schema = self.metadata.get_feature_group(feature_group)
        ids = entity_frame(entity_ids, schema.entity_keys)
        text, params, frames = self._pushdown(
            schema,
            features,
            ids,
            None if start is None else to_utc(start),
            None if end is None else to_utc(end),
        )
        return self._typed(schema, self._run(text, params, frames, schema=schema))

    def _typed(self, schema: FeatureGroupSchema, frame: pl.DataFrame) -> pl.DataFrame:
        """Return ``frame`` cast to the declared types (narrowed values checked; virtual_types.py)."""
        typed = type_result(schema, frame)
        if typed.misfits:
            cause = "; ".join(
                f"the query now returns {c!r} as {t}, declared {schema.column_spec(c)}"
                for c, t in typed.misfits.items()
            )
            drift = self._drift(schema, typed.misfits, cause=cause)
            assert drift is not None  # misfits are named when no source change is recorded
            raise drift
        return typed.frame

    # -- reads ----------------------------------------------------------------------------
    def preview(self, feature_group: str, limit: int = 10) -> QueryResult:
        """Compute the first ``limit`` rows of a virtual group, with the SQL and timing.

        Example:
            >>> store.preview("user_features", limit=5)  # doctest: +SKIP
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise VirtualizationQueryError(f"limit must be a non-negative integer, got {limit!r}")
        schema = self.metadata.get_feature_group(feature_group)
        sql = f"SELECT * FROM ({self.group_sql(schema)}) AS _p LIMIT {int(limit)}"
        started = time.perf_counter()
        frame = self._typed(schema, self.executor.execute(sql).collect())
        return QueryResult(frame.lazy(), sql, time.perf_counter() - started, self.executor.name)

    def get_features(
        self,
        feature_names: Sequence[str] | str,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        point_in_time: datetime | None = None,
        *,
        full_feature_names: bool = False,
    ) -> pl.LazyFrame:
        """Compute the latest value of each feature per entity (as of ``point_in_time``).

        Same semantics as the materialized store: with ``entity_ids`` one row per requested id
        in order, nulls where nothing is known; without, every entity with a live value, sorted
        by key. The ttl counts back from ``point_in_time`` (or now).

        Raises:
            FeatureNotFoundError: For unknown or undefined features.
            VirtualizationQueryError: If a query fails; QueryTimeoutError past the timeout.

        Example:
            >>> store.get_features(["age"], entity_ids={"user_id": [1, 2]}).collect()  # doctest: +SKIP
        """
        read = plan_read(
            self.metadata, feature_names, entity_ids=entity_ids, full_feature_names=full_feature_names
        )
        schemas, ids, outputs = read.schemas, read.ids, read.outputs
        when = to_utc(point_in_time) if point_in_time is not None else None
        reads = []
        for name, schema in schemas.items():
            features = list(read.groups[name].features)
            rows = self.compute_group(
                name, features, entity_ids=None if ids is None else ids.select(schema.entity_keys), end=when
            )
            scan = rows.lazy().with_row_index(SEQ_COLUMN).with_columns(pl.col(SEQ_COLUMN).cast(pl.Int64))
            reads.append(GroupRead(schema, scan, tuple(features), tuple(outputs[name])))
        plan = latest_values(reads, ids, when)
        return apply_ttl(plan, schemas, outputs, when, every_entity=ids is None)

    def get_historical_features(
        self,
        entity_df: FrameLike,
        feature_names: Sequence[str] | str,
        *,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
    ) -> pl.LazyFrame:
        """Join computed features onto ``entity_df`` as of each row's time (point in time).

        Only the entities of ``entity_df`` and the time range it needs are computed. The
        semantics are the materialized store's; on Spark the join runs as Spark window functions.

        Raises:
            PointInTimeError: For a missing key or time column, or a name clash.

        Example:
            >>> store.get_historical_features(labels, ["user_features.age"]).collect()  # doctest: +SKIP
        """
        entity = to_dataframe(entity_df)
        read = plan_read(
            self.metadata,
            feature_names,
            entity_df=entity,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
        )
        time_column = read.time_column
        assert time_column is not None
        times = entity.select(utc_datetime_expr(time_column, entity.schema[time_column]).alias("t"))["t"]
        out = entity
        for name, request in read.groups.items():
            schema, features, outputs = request.schema, request.features, request.outputs
            ids = entity.select(schema.entity_keys).drop_nulls()
            spec = request.pit_spec(time_column)
            if spec is None:
                rows = self.compute_group(name, features, entity_ids=ids)
                out = _join_static(out, rows, schema, features, outputs)
                continue
            upper = times.max()
            lower = None if schema.ttl is None or upper is None else times.min() - schema.ttl  # type: ignore[operator]
            if has_capability(self.executor, DISTRIBUTED_PIT):
                out = self._engine_pit(out, schema, spec, ids, lower, upper)  # type: ignore[arg-type]
            else:
                rows = self.compute_group(name, features, entity_ids=ids, start=lower, end=upper)  # type: ignore[arg-type]
                out = point_in_time_join(out.lazy(), rows.lazy(), spec).collect()
        return out.lazy()

    def _engine_pit(
        self,
        entity: pl.DataFrame,
        schema: FeatureGroupSchema,
        spec: PointInTimeSpec,
        ids: pl.DataFrame,
        lower: datetime | None,
        upper: datetime | None,
    ) -> pl.DataFrame:
        """Run the point-in-time join on the engine (Spark window functions), transferring only the result."""
        text, params, frames = self._pushdown(schema, spec.feature_columns, ids, lower, upper)
        result = self.executor.point_in_time_join(entity, spec, text, params, frames=frames)  # type: ignore[attr-defined]
        if result.height != entity.height:
            raise PointInTimeError(
                f"the engine's point-in-time join returned {result.height} rows for {entity.height}"
            )
        return entity.hstack(self._typed(schema, result).get_columns())

    # -- materialization ------------------------------------------------------------------
    def materialize(
        self,
        feature_group: str,
        target: MaterializedFeatureStore,
        *,
        mode: str = "append",
    ) -> Any:
        """Compute a virtual group and write it to a materialized store (one transaction).

        With an executor that writes files (Spark), the engine writes the Parquet files into the
        Delta table and delta-rs commits them as one transaction, so rows never pass through the
        driver; otherwise the result is written with ``target.write_features`` (see
        :mod:`tauro_workbench.stores.promotion`, the one promotion path).

        Returns:
            The registry's write record.

        Example:
            >>> virtual.materialize("user_features", materialized_store)  # doctest: +SKIP
        """
        from tauro_workbench.stores.promotion import materialize

        return materialize(self, target, feature_group, mode=mode)

    def write_features(
        self,
        feature_group: str,
        data: FrameLike,
        mode: str = "append",
        backfill: bool = False,
        *,
        on_drift: str | None = None,
    ) -> Any:
        """Refuse: virtual groups are computed, not written (use :meth:`materialize`)."""
        raise FeatureMaterializationError(
            f"Virtual group {feature_group!r} is computed from SQL and cannot be written to.",
            hint="Materialize it with store.materialize(group, MaterializedFeatureStore(...)).",
        )

    def health_check(self) -> HealthReport:
        """Check the registry and that the executor answers ``SELECT 1``."""
        checks = {"registry": self.metadata.health_check()}
        details = {}
        try:
            self.executor.execute("SELECT 1 AS ok").collect()
            checks["executor"] = True
        except Exception as err:  # a health check reports, never raises
            checks["executor"] = False
            details["executor"] = repr(err)
        return HealthReport(checks=checks, details=details)


def _normalise(sql: str, frames: Mapping[str, pl.DataFrame]) -> str:
    for i, name in enumerate(frames):
        sql = sql.replace(name, f"frame{i}")
    return sql


def _join_static(
    out: pl.DataFrame,
    rows: pl.DataFrame,
    schema: FeatureGroupSchema,
    features: tuple[str, ...],
    outputs: tuple[str, ...],
) -> pl.DataFrame:
    """Left-join the last row per entity of a group without event time (row order = write order)."""
    clash = [o for o in outputs if o in out.columns]
    if clash:
        raise PointInTimeError(f"output columns {clash} already exist in the entity frame")
    keys = list(schema.entity_keys)
    latest = rows.unique(subset=keys, keep="last", maintain_order=True).select(
        [
            *[pl.col(k).cast(out.schema[k], strict=False) for k in keys],
            *[pl.col(f).alias(o) for f, o in zip(features, outputs, strict=True)],
        ]
    )
    return out.join(latest, on=keys, how="left", maintain_order="left")
