"""Compatibility module for the Tauro import paths (``tauro.feature_store.base``).

Re-exports the configuration, the registry and the store base class, so that
``from tauro_workbench.base import FeatureStoreMetadata`` works like the Tauro original.
The registry and the store base are imported on first access only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tauro_workbench.config import FeatureStoreConfig, FeatureStoreMode

if TYPE_CHECKING:
    from tauro_workbench.registry import FeatureStoreMetadata
    from tauro_workbench.stores.base import BaseFeatureStore

__all__ = ["BaseFeatureStore", "FeatureStoreConfig", "FeatureStoreMetadata", "FeatureStoreMode"]

_LAZY = {
    "FeatureStoreMetadata": "tauro_workbench.registry",
    "BaseFeatureStore": "tauro_workbench.stores.base",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tauro_workbench.base' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
