"""BaseFeatureStore: the contract every store implements, and what they share.

Every store has a resolved :class:`~tauro_workbench.config.FeatureStoreConfig`, a registry
(``store.metadata``) and an event bus (``store.events``). Subclasses implement
:meth:`~BaseFeatureStore.get_features`; stores that hold data also implement
:meth:`~BaseFeatureStore.write_features` and :meth:`~BaseFeatureStore.get_historical_features`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from tauro_workbench.config import FeatureStoreConfig, resolve_config
from tauro_workbench.exceptions import FeatureMaterializationError, PointInTimeError
from tauro_workbench.frames import FrameLike
from tauro_workbench.monitoring.events import EventBus, GroupRegistered
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["VIRTUAL_DEFINITION_KIND", "BaseFeatureStore", "HealthReport"]

#: Registry document kind holding the SQL definitions of virtual groups.
VIRTUAL_DEFINITION_KIND = "virtual_definition"


@dataclass(frozen=True)
class HealthReport:
    """The result of :meth:`BaseFeatureStore.health_check`; truthy when every check passed."""

    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """True when every check passed."""
        return all(self.checks.values())

    def __bool__(self) -> bool:
        return self.healthy

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={'ok' if v else 'FAILED'}" for k, v in self.checks.items())
        return f"HealthReport({'healthy' if self.healthy else 'unhealthy'}: {parts})"

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


class BaseFeatureStore(ABC):
    """Abstract base of every feature store.

    Args:
        context: None, a dict of options, or a Tauro context object with
            ``feature_store_path`` / ``feature_store_config`` attributes.
        config: A :class:`FeatureStoreConfig` or a dict of options (wins over ``context``).
        storage_path: Root folder of the store (wins over both).
        metadata: A registry to share; by default ``<storage_path>/registry.db``.
        events: An event bus to share; by default one on ``metadata``.
    """

    def __init__(
        self,
        context: Any = None,
        *,
        config: FeatureStoreConfig | Mapping[str, Any] | None = None,
        storage_path: str | Path | None = None,
        metadata: FeatureStoreMetadata | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.context = context
        self.config = resolve_config(context, config=config, storage_path=storage_path)
        self.metadata = metadata if metadata is not None else FeatureStoreMetadata(config=self.config)
        self.events = events if events is not None else EventBus(self.metadata)

    # -- the contract ---------------------------------------------------------------------
    def register_features(self, schema: FeatureGroupSchema) -> FeatureGroupSchema:
        """Register a feature group schema (an identical re-registration is a no-op).

        Example:
            >>> store.register_features(user_features)  # doctest: +SKIP
        """
        if self.metadata.ensure_feature_group(schema):
            self.events.publish(GroupRegistered(group=schema.name, version=schema.version))
        return schema

    @abstractmethod
    def get_features(
        self,
        feature_names: Sequence[str] | str,
        entity_ids: Mapping[str, Any] | FrameLike | None = None,
        point_in_time: datetime | None = None,
    ) -> pl.LazyFrame:
        """Return the latest value of each feature per entity (as of ``point_in_time``)."""

    def write_features(
        self,
        feature_group: str,
        data: FrameLike,
        mode: str = "append",
        backfill: bool = False,
        *,
        on_drift: str | None = None,
    ) -> Any:
        """Write features to the store; stores that hold no data refuse."""
        raise FeatureMaterializationError(
            f"{type(self).__name__} does not store data, so it cannot write {feature_group!r}.",
            hint="Write through a MaterializedFeatureStore (or promote the group).",
        )

    def get_historical_features(
        self,
        entity_df: FrameLike,
        feature_names: Sequence[str] | str,
        *,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
    ) -> pl.LazyFrame:
        """Return a point-in-time-correct join of features onto ``entity_df``."""
        raise PointInTimeError(f"{type(self).__name__} does not support historical retrieval.")

    def health_check(self) -> HealthReport:
        """Check that the store's parts answer; the report is truthy when all do."""
        checks = {"registry": self.metadata.health_check()}
        details: dict[str, str] = {}
        self._check_online(checks, details)
        return HealthReport(checks=checks, details=details)

    def _check_online(self, checks: dict[str, bool], details: dict[str, str]) -> None:
        """Add an ``online`` check (and its error to ``details``); stores with no online part add none."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(storage_path={self.config.storage_path!r}, mode={self.config.mode.value!r})"
