"""Query engines: the QueryExecutor protocol, DuckDB (embedded default) and Spark, and the
point-in-time join implemented per engine.

Executors are built by one factory, :func:`create_executor`, from ``virtualized.executor_type``;
callers then ask what an executor can do (:func:`has_capability`) instead of asking its name:

- ``WRITE_FILES``: the engine writes a query's result as Parquet files itself
  (``executor.write_files(...)``), so a materialization never brings the rows to the driver;
- ``DISTRIBUTED_PIT``: the engine runs the point-in-time join itself
  (``executor.point_in_time_join(...)``), transferring only the joined columns.

Importing this package imports no engine library (pyspark loads with the Spark executor only).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tauro_workbench.exceptions import ConfigurationError

if TYPE_CHECKING:
    from tauro_workbench.config import FeatureStoreConfig
    from tauro_workbench.engines.base import QueryExecutor
    from tauro_workbench.sources import SourceRegistry

__all__ = ["DISTRIBUTED_PIT", "EXECUTORS", "WRITE_FILES", "create_executor", "has_capability"]

WRITE_FILES = "write_files"
DISTRIBUTED_PIT = "distributed_pit"

#: executor_type -> "module:class", imported only when that executor is asked for.
EXECUTORS: dict[str, str] = {
    "duckdb": "tauro_workbench.engines.duckdb:DuckDBQueryExecutor",
    "spark": "tauro_workbench.engines.spark:SparkQueryExecutor",
}


def create_executor(
    config: FeatureStoreConfig,
    *,
    sources: SourceRegistry | Mapping[str, Any] | None = None,
    spark: Any = None,
) -> QueryExecutor:
    """Build the executor named by ``config.virtualized.executor_type``.

    Args:
        config: The resolved config (its ``virtualized`` options configure the executor).
        sources: The sources the executor reads.
        spark: A SparkSession for the Spark executor (default: the active one, else a local one).

    Returns:
        A ready executor.

    Raises:
        ConfigurationError: For an unknown executor type.
        MissingExtraError: If the engine's optional package is not installed.

    Example:
        >>> from tauro_workbench.config import FeatureStoreConfig
        >>> create_executor(FeatureStoreConfig()).name
        'duckdb'
    """
    kind = config.virtualized.executor_type
    target = EXECUTORS.get(kind)
    if target is None:
        raise ConfigurationError(f"unknown executor_type {kind!r}; valid: {sorted(EXECUTORS)}")
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    if spark is not None:
        return cls(spark=spark, config=config, sources=sources)  # type: ignore[no-any-return]
    return cls(config=config, sources=sources)  # type: ignore[no-any-return]


def has_capability(executor: object, capability: str) -> bool:
    """Return True when ``executor`` declares ``capability`` (``WRITE_FILES``, ``DISTRIBUTED_PIT``)."""
    return capability in getattr(executor, "capabilities", frozenset())
