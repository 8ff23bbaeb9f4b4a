"""WriteMonitor: profiles every write and checks it for drift (STUB: to be implemented)."""

from __future__ import annotations

from typing import Any

import polars as pl

from tauro_workbench.config import DriftConfig
from tauro_workbench.monitoring.events import EventBus
from tauro_workbench.registry import FeatureStoreMetadata, WriteRecord
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["WriteMonitor"]


class WriteMonitor:
    """Profiles writes and gates them on drift.

    The materialized store calls :meth:`before_write` after validation and before anything is
    written (it raises ``DriftDetectedError`` when the gate blocks), and :meth:`after_write`
    once the write is committed and recorded.
    """

    def __init__(self, metadata: FeatureStoreMetadata, config: DriftConfig, bus: EventBus) -> None:
        self.metadata = metadata
        self.config = config
        self.bus = bus

    def before_write(
        self, schema: FeatureGroupSchema, data: pl.DataFrame, *, on_drift: str | None = None
    ) -> Any:
        """Profile ``data`` and compare it with the reference; return the drift report (or None)."""
        return None

    def after_write(self, schema: FeatureGroupSchema, record: WriteRecord, report: Any) -> None:
        """Store the profile and report with the write record and publish drift events."""
        return None
