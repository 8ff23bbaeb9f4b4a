"""tauro_workbench: a notebook-centric feature store.

Register typed feature groups, compute virtual features with SQL, materialize them to Delta
Lake, build point-in-time-correct training sets, serve the latest values online, and watch
every write for drift.

Heavy parts are imported on first use (PEP 562), and optional backends (pyspark, redis,
altair, anywidget, marimo) only when asked for, so ``import tauro_workbench`` stays fast.
The library logs through loguru and is silent until ``logger.enable("tauro_workbench")``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loguru import logger

from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureGroupNotFoundError,
    FeatureMaterializationError,
    FeatureNotFoundError,
    FeatureRegistryError,
    FeatureStoreException,
    MetadataError,
    RepositoryNotFoundError,
    SchemaValidationError,
    VirtualizationQueryError,
)

if TYPE_CHECKING:
    from tauro_workbench.catalog import Catalog
    from tauro_workbench.config import FeatureStoreConfig, FeatureStoreMode
    from tauro_workbench.dtypes import DataType
    from tauro_workbench.engines.base import QueryExecutor, QueryResult
    from tauro_workbench.engines.duckdb import DuckDBQueryExecutor
    from tauro_workbench.engines.spark import SparkQueryExecutor
    from tauro_workbench.feature_view import FeatureView
    from tauro_workbench.lineage_graph import LineageGraph
    from tauro_workbench.monitoring.drift import DriftReport
    from tauro_workbench.monitoring.events import EventBus
    from tauro_workbench.online.base import OnlineStore
    from tauro_workbench.online.memory import InMemoryOnlineStore
    from tauro_workbench.online.redis import RedisOnlineStore
    from tauro_workbench.registry import FeatureStoreMetadata
    from tauro_workbench.results import Preview, TrainingSet
    from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema, FeatureType
    from tauro_workbench.schema_inference import infer_schema
    from tauro_workbench.stores.base import BaseFeatureStore, HealthReport
    from tauro_workbench.stores.hybrid import HybridFeatureStore
    from tauro_workbench.stores.materialized import MaterializedFeatureStore
    from tauro_workbench.stores.promotion import PromotionResult
    from tauro_workbench.stores.routing import Route
    from tauro_workbench.stores.virtualized import VirtualizedFeatureStore
    from tauro_workbench.workbench import Workbench

logger.disable("tauro_workbench")

__version__ = "0.1.0"

# name -> module that defines it, imported on first attribute access: even polars and pydantic
# wait until a name that needs them is used.
_LAZY: dict[str, str] = {
    "FeatureStoreConfig": "tauro_workbench.config",
    "FeatureStoreMode": "tauro_workbench.config",
    "DataType": "tauro_workbench.dtypes",
    "FeatureType": "tauro_workbench.schema",
    "FeatureSchema": "tauro_workbench.schema",
    "FeatureGroupSchema": "tauro_workbench.schema",
    "FeatureStoreMetadata": "tauro_workbench.registry",
    "BaseFeatureStore": "tauro_workbench.stores.base",
    "HealthReport": "tauro_workbench.stores.base",
    "MaterializedFeatureStore": "tauro_workbench.stores.materialized",
    "VirtualizedFeatureStore": "tauro_workbench.stores.virtualized",
    "QueryExecutor": "tauro_workbench.engines.base",
    "QueryResult": "tauro_workbench.engines.base",
    "DuckDBQueryExecutor": "tauro_workbench.engines.duckdb",
    "SparkQueryExecutor": "tauro_workbench.engines.spark",
    "OnlineStore": "tauro_workbench.online.base",
    "InMemoryOnlineStore": "tauro_workbench.online.memory",
    "RedisOnlineStore": "tauro_workbench.online.redis",
    "EventBus": "tauro_workbench.monitoring.events",
    "DriftReport": "tauro_workbench.monitoring.drift",
    "Workbench": "tauro_workbench.workbench",
    "Preview": "tauro_workbench.results",
    "TrainingSet": "tauro_workbench.results",
    "FeatureView": "tauro_workbench.feature_view",
    "infer_schema": "tauro_workbench.schema_inference",
    "HybridFeatureStore": "tauro_workbench.stores.hybrid",
    "PromotionResult": "tauro_workbench.stores.promotion",
    "Route": "tauro_workbench.stores.routing",
    "LineageGraph": "tauro_workbench.lineage_graph",
    "Catalog": "tauro_workbench.catalog",
}

__all__ = [
    "BaseFeatureStore",
    "Catalog",
    "ConfigurationError",
    "DataType",
    "DriftReport",
    "DuckDBQueryExecutor",
    "EventBus",
    "FeatureGroupNotFoundError",
    "FeatureGroupSchema",
    "FeatureMaterializationError",
    "FeatureNotFoundError",
    "FeatureRegistryError",
    "FeatureSchema",
    "FeatureStoreConfig",
    "FeatureStoreException",
    "FeatureStoreMetadata",
    "FeatureStoreMode",
    "FeatureType",
    "FeatureView",
    "HealthReport",
    "HybridFeatureStore",
    "InMemoryOnlineStore",
    "LineageGraph",
    "MaterializedFeatureStore",
    "MetadataError",
    "OnlineStore",
    "Preview",
    "PromotionResult",
    "QueryExecutor",
    "QueryResult",
    "RedisOnlineStore",
    "RepositoryNotFoundError",
    "Route",
    "SchemaValidationError",
    "SparkQueryExecutor",
    "TrainingSet",
    "VirtualizationQueryError",
    "VirtualizedFeatureStore",
    "Workbench",
    "__version__",
    "infer_schema",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tauro_workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
