"""The public API: `__all__` is a curated, sorted snapshot and every name resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys

import tauro_workbench

EXPECTED = [
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


def test_all_is_the_expected_sorted_snapshot() -> None:
    assert tauro_workbench.__all__ == sorted(tauro_workbench.__all__)
    assert tauro_workbench.__all__ == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in tauro_workbench.__all__:
        assert getattr(tauro_workbench, name) is not None
    assert set(tauro_workbench.__all__) <= set(dir(tauro_workbench))


def test_lazy_names_resolve_to_their_defining_module() -> None:
    for name, module in tauro_workbench._LAZY.items():
        assert name in tauro_workbench.__all__
        assert getattr(tauro_workbench, name) is getattr(importlib.import_module(module), name)


def test_lazy_names_are_not_imported_until_used() -> None:
    code = (
        "import sys, tauro_workbench; before = 'tauro_workbench.registry' in sys.modules; "
        "tauro_workbench.FeatureStoreMetadata; print(before, 'tauro_workbench.registry' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "True"]


def test_unknown_attributes_raise_attribute_error() -> None:
    try:
        tauro_workbench.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_tauro_compatible_module_paths() -> None:
    from tauro_workbench import base, exceptions, schema

    assert base.FeatureStoreMetadata is tauro_workbench.FeatureStoreMetadata
    assert base.BaseFeatureStore is tauro_workbench.BaseFeatureStore
    assert base.FeatureStoreConfig is tauro_workbench.FeatureStoreConfig
    assert base.FeatureStoreMode is tauro_workbench.FeatureStoreMode
    assert schema.DataType is tauro_workbench.DataType
    assert {"FeatureSchema", "FeatureGroupSchema", "FeatureType", "DataType"} <= set(schema.__all__)
    assert exceptions.FeatureStoreException is tauro_workbench.FeatureStoreException
    assert tauro_workbench.__version__ == "0.1.0"
