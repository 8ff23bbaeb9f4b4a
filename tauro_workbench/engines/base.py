"""The QueryExecutor protocol, the QueryResult shown by ``preview``, and executor plumbing.

An executor runs SQL over named sources and returns Polars. Two ship with the library:
:class:`~tauro_workbench.engines.duckdb.DuckDBQueryExecutor` (embedded default) and
:class:`~tauro_workbench.engines.spark.SparkQueryExecutor`. The SQL dialect contract is in
:mod:`tauro_workbench.engines.sql_dialect`.

``context`` (for executors and the virtualized store) is None, a dict, or an object. A dict may
hold ``sources`` (name -> path or frame, or a SourceRegistry) and ``spark`` (a SparkSession);
its other keys are config options. An object may carry the attributes ``sources``, ``spark``,
``feature_store_config`` and ``feature_store_path`` (the Tauro convention).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import polars as pl

from tauro_workbench.config import FeatureStoreConfig, resolve_config
from tauro_workbench.sources import DataSource, SourceRegistry

__all__ = ["QueryExecutor", "QueryResult", "TimeoutGuard", "executor_setup"]

CONTEXT_KEYS = ("sources", "spark")


@runtime_checkable
class QueryExecutor(Protocol):
    """What every query engine offers.

    Attributes:
        name: Engine name (``"duckdb"``, ``"spark"``).
        dialect: The SQL dialect it runs natively.
        sources: The named sources queries can read.
        config: The resolved feature store config (``virtualized`` options apply).
    """

    name: str
    dialect: str
    sources: SourceRegistry
    config: FeatureStoreConfig

    def execute(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        dialect: str | None = None,
        frames: Mapping[str, pl.DataFrame] | None = None,
    ) -> pl.LazyFrame:
        """Run a query (named ``params`` bound, ``frames`` visible as temporary relations)."""
        ...

    def schema(self, sql: str, *, dialect: str | None = None) -> pl.Schema:
        """Return the result schema of a query without computing its rows."""
        ...

    def explain(self, sql: str, *, dialect: str | None = None) -> str:
        """Return the engine's plan of a query."""
        ...

    def register_source(self, source: DataSource) -> DataSource:
        """Make a source queryable under its dotted name."""
        ...

    def register_frame(self, name: str, frame: Any) -> DataSource:
        """Make an in-memory frame queryable as source ``name``."""
        ...

    def close(self) -> None:
        """Release connections (an executor may not be used afterwards)."""
        ...


@dataclass(frozen=True)
class QueryResult:
    """A computed result with the SQL that produced it, for notebook display.

    Attributes:
        frame: The rows, lazily.
        sql: The SQL that ran (after transpiling and pushdown).
        seconds: Wall time of the query.
        engine: The executor's name.
    """

    frame: pl.LazyFrame
    sql: str
    seconds: float
    engine: str

    def to_polars(self) -> pl.DataFrame:
        """Return the rows as a DataFrame."""
        return self.frame.collect()

    def __repr__(self) -> str:
        return f"QueryResult(engine={self.engine!r}, seconds={self.seconds:.3f}, sql={self.sql!r})"

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


class TimeoutGuard:
    """Cancel a running query after ``seconds`` by calling ``cancel`` from a timer thread.

    Use as a context manager around the blocking call; :attr:`fired` tells whether the
    timeout struck (so the caller raises QueryTimeoutError instead of a generic error).
    """

    def __init__(self, seconds: float, cancel: Any) -> None:
        self.seconds = seconds
        self._cancel = cancel
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
        self._cancel()

    def __enter__(self) -> TimeoutGuard:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


def _context_value(context: Any, key: str) -> Any:
    if isinstance(context, Mapping):
        return context.get(key)
    return getattr(context, key, None)


def executor_setup(
    context: Any,
    config: FeatureStoreConfig | Mapping[str, Any] | None,
    sources: Any,
) -> tuple[FeatureStoreConfig, SourceRegistry, Any]:
    """Resolve an executor's config, sources and (for Spark) session from its arguments.

    Returns:
        ``(config, sources, spark_or_None)``.
    """
    clean = context
    if isinstance(context, Mapping):
        clean = {k: v for k, v in context.items() if k not in CONTEXT_KEYS}
    resolved = resolve_config(clean, config=config)
    given = sources if sources is not None else _context_value(context, "sources")
    return resolved, SourceRegistry.of(given), _context_value(context, "spark")


def strip_context(context: Any) -> Any:
    """Return ``context`` without the executor-only keys (for config resolution)."""
    if isinstance(context, Mapping):
        return {k: v for k, v in context.items() if k not in CONTEXT_KEYS}
    return context
