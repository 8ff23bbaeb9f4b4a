"""SparkQueryExecutor: SQL over named sources with Spark SQL (imports pyspark only here).

Sources become temporary views (Spark has no schemas for them), and queries are rewritten by
sqlglot from ``silver.users`` to the view's name. Delta sources are read through their
transaction log's file list, never the folder. Results come back through Arrow
(``pl.from_arrow(sdf.toArrow())``); :meth:`SparkQueryExecutor.dataframe` returns the Spark
DataFrame itself for work that must stay distributed (materializing large groups).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import polars as pl
from loguru import logger

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.engines.base import TimeoutGuard, executor_setup
from tauro_workbench.engines.sql_dialect import check_dialect, check_reads, parse_query, rewrite_tables
from tauro_workbench.exceptions import MissingExtraError, QueryTimeoutError, VirtualizationQueryError
from tauro_workbench.sources import DataSource, SourceRegistry

__all__ = ["SparkQueryExecutor", "start_local_spark"]


def start_local_spark(master: str = "local[*]") -> Any:
    """Start (or get) a local SparkSession bound to loopback, UTC, microsecond Parquet.

    Raises:
        MissingExtraError: If pyspark is not installed.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise MissingExtraError("pyspark", extra="spark") from err
    logger.info("starting a local Spark session ({})", master)
    return (
        SparkSession.builder.master(master)
        .appName("tauro-workbench")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .getOrCreate()
    )


class SparkQueryExecutor:
    """Run SQL with Spark over the registered sources.

    Args:
        context: None, a dict or a Tauro context object; its ``spark`` session and ``sources``
            are used (see :mod:`tauro_workbench.engines.base`).
        spark: A SparkSession (wins over the context's). Without one, the active session is
            used, else a local one is started on ``virtualized.spark_master``.
        config: Config or options; ``virtualized.query_timeout_seconds`` bounds every query.
        sources: A SourceRegistry or a mapping name -> path/frame.

    Example:
        >>> executor = SparkQueryExecutor(spark=spark)  # doctest: +SKIP
        >>> executor.execute("SELECT * FROM silver.users DISTRIBUTE BY user_id")  # doctest: +SKIP
    """

    name = "spark"
    dialect = "spark"
    #: what callers may ask of this executor (see :mod:`tauro_workbench.engines`)
    capabilities = frozenset({"write_files", "distributed_pit"})

    def __init__(
        self,
        context: Any = None,
        *,
        spark: Any = None,
        config: FeatureStoreConfig | Mapping[str, Any] | None = None,
        sources: SourceRegistry | Mapping[str, Any] | None = None,
    ) -> None:
        self.config, self.sources, context_spark = executor_setup(context, config, sources)
        session = spark if spark is not None else context_spark
        if session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError as err:
                raise MissingExtraError("pyspark", extra="spark") from err
            session = SparkSession.getActiveSession() or start_local_spark(
                self.config.virtualized.spark_master
            )
        self.spark = session
        self._lock = threading.Lock()
        self._views: dict[str, str] = {}

    # -- sources ------------------------------------------------------------------------
    def register_source(self, source: DataSource) -> DataSource:
        """Make ``source`` queryable under its dotted name (replacing one of the same name)."""
        return self.sources.add_any(source.name, source)

    def register_frame(self, name: str, frame: Any) -> DataSource:
        """Make an in-memory frame queryable as source ``name`` (e.g. ``"silver.users"``)."""
        return self.sources.add_frame(name, frame)

    def source_dataframe(self, source: DataSource) -> Any:
        """Return a Spark DataFrame reading ``source`` (Delta through its file list)."""
        reader = self.spark.read
        if source.format == "frame":
            assert source.frame is not None
            return self.spark.createDataFrame(source.frame.to_arrow())
        if source.format == "csv":
            sep = str(source.options.get("separator", ","))
            return reader.options(header=True, inferSchema=True, sep=sep).csv(source.files())
        files = source.files()
        if source.format == "delta":
            if not files:  # an empty table: keep its schema
                return self.spark.createDataFrame(source.to_arrow_dataset().schema.empty_table())
            return reader.option("basePath", source.location).parquet(*files)
        return reader.parquet(*files)

    def _sync(self) -> dict[str, str]:
        """Refresh the temporary view of each new or changed source; return name -> view."""
        with self._lock:
            for source in self.sources.snapshot():
                fingerprint = source.fingerprint()
                if self._views.get(source.name) != fingerprint:
                    self.source_dataframe(source).createOrReplaceTempView(source.relation_name)
                    self._views[source.name] = fingerprint
            return {s.name: s.relation_name for s in self.sources.snapshot()}

    # -- queries ------------------------------------------------------------------------
    def translate(
        self, sql: str, dialect: str | None = None, *, frames: Mapping[str, Any] | None = None
    ) -> str:
        """Return ``sql`` as Spark SQL with source names rewritten to their views.

        Raises:
            VirtualizationQueryError: If it is not one SELECT reading only the registered
                sources and ``frames``: table-valued functions (``range``, ``read_files``),
                paths (``parquet.`/x```), other tables, ``TRANSFORM`` and ``reflect`` are
                refused (see :func:`~tauro_workbench.engines.sql_dialect.check_reads`).
        """
        read = check_dialect(dialect or self.dialect)
        tree = parse_query(sql, read)
        check_reads(tree, self.sources.names(), frames=list(frames or ()), query=sql, dialect=read)
        return rewrite_tables(tree, self._sync()).sql(dialect="spark")

    def dataframe(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        dialect: str | None = None,
        frames: Mapping[str, pl.DataFrame] | None = None,
    ) -> Any:
        """Return the query as a (lazy) Spark DataFrame; ``frames`` stay registered.

        Raises:
            VirtualizationQueryError: If Spark cannot analyse the query.
        """
        text = self.translate(sql, dialect, frames=frames)
        for name, frame in (frames or {}).items():
            self.spark.createDataFrame(frame.to_arrow()).createOrReplaceTempView(name)
        logger.debug("spark query: {}", text)
        try:
            return self.spark.sql(text, args=dict(params) if params else None)
        except Exception as err:  # pyspark raises AnalysisException, ParseException, Py4J errors
            raise VirtualizationQueryError(f"Spark could not run the query: {err}", query=sql) from err

    def _collect(self, sdf_factory: Any, sql: str) -> Any:
        timeout = self.config.virtualized.query_timeout_seconds
        context = self.spark.sparkContext
        group = f"tauro-{uuid.uuid4().hex}"
        guard = TimeoutGuard(timeout, lambda: context.cancelJobGroup(group))
        context.setJobGroup(group, "tauro_workbench query", interruptOnCancel=True)
        try:
            with guard:
                return sdf_factory().toArrow()
        except VirtualizationQueryError:
            raise
        except Exception as err:
            if guard.fired:
                raise QueryTimeoutError(
                    f"The query ran longer than query_timeout_seconds={timeout} and was cancelled.",
                    query=sql,
                    hint="Raise virtualized.query_timeout_seconds or narrow the query.",
                ) from err
            raise VirtualizationQueryError(f"Spark could not run the query: {err}", query=sql) from err
        finally:
            context.setLocalProperty("spark.jobGroup.id", None)

    def execute(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        dialect: str | None = None,
        frames: Mapping[str, pl.DataFrame] | None = None,
    ) -> pl.LazyFrame:
        """Run ``sql`` on Spark and return its rows (transferred through Arrow).

        Args:
            sql: One query; sources are named as registered (``silver.users``).
            params: Named parameters, written ``:name`` in Spark SQL (``$name`` in DuckDB SQL).
            dialect: The dialect ``sql`` is written in (default Spark's).
            frames: Extra relations visible only to this query, by name.

        Raises:
            VirtualizationQueryError: If the query fails (the SQL is quoted).
            QueryTimeoutError: If it runs past ``virtualized.query_timeout_seconds``.

        Example:
            >>> executor.execute("SELECT * FROM silver.users WHERE user_id = :id", {"id": 1})  # doctest: +SKIP
        """
        start = time.perf_counter()
        try:
            table = self._collect(lambda: self.dataframe(sql, params, dialect=dialect, frames=frames), sql)
        finally:
            for name in frames or {}:
                self.spark.catalog.dropTempView(name)
        logger.debug("spark: {} rows in {:.3f} s", table.num_rows, time.perf_counter() - start)
        return pl.from_arrow(table).lazy()  # type: ignore[union-attr]

    def write_files(self, sql: str, parent: Any, **options: Any) -> Any:
        """Write the result of ``sql`` as Parquet files under ``parent`` (rows stay on Spark).

        See :func:`tauro_workbench.engines.spark_delta.write_parquet_files` for the options.
        """
        from tauro_workbench.engines.spark_delta import write_parquet_files

        return write_parquet_files(self, sql, parent, **options)

    def point_in_time_join(
        self,
        entity: pl.DataFrame,
        spec: Any,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        frames: Mapping[str, pl.DataFrame] | None = None,
    ) -> pl.DataFrame:
        """Join the rows of ``sql`` onto ``entity`` as of each row's time, on Spark.

        Only ``entity``'s key and time columns are sent, and only the joined feature columns
        come back, in ``entity``'s row order (see :mod:`tauro_workbench.engines.pit_spark`).
        """
        from tauro_workbench.engines.pit_spark import point_in_time_join_spark

        narrow = entity.select([*spec.entity_keys, spec.entity_time])
        try:
            features_sdf = self.dataframe(sql, params, frames=frames)
            entity_sdf = self.spark.createDataFrame(narrow.to_arrow())
            joined = point_in_time_join_spark(entity_sdf, features_sdf, spec)
            table = self._collect(lambda: joined.select(*spec.outputs), sql)
        finally:
            for name in frames or {}:
                self.spark.catalog.dropTempView(name)
        result = pl.from_arrow(table)
        assert isinstance(result, pl.DataFrame)
        return result

    def schema(self, sql: str, *, dialect: str | None = None) -> pl.Schema:
        """Return the result schema of ``sql`` (Spark's analysis only, no job runs)."""
        from pyspark.sql.pandas.types import to_arrow_schema

        sdf = self.dataframe(sql, dialect=dialect)
        arrow = to_arrow_schema(sdf.schema, timezone="UTC", prefers_large_types=True)
        return pl.from_arrow(arrow.empty_table()).schema  # type: ignore[union-attr]

    def explain(self, sql: str, *, dialect: str | None = None) -> str:
        """Return Spark's formatted plan of ``sql``."""
        sdf = self.dataframe(sql, dialect=dialect)
        return str(sdf._jdf.queryExecution().toString())

    def close(self) -> None:
        """Drop the temporary views of the sources (the session is left running)."""
        with self._lock:
            for name in list(self._views):
                source = self.sources.find(name)
                if source is not None:
                    self.spark.catalog.dropTempView(source.relation_name)
            self._views.clear()

    def __repr__(self) -> str:
        return f"SparkQueryExecutor(sources={self.sources.names()})"
