"""OnlineServingMixin: online sync and reads for stores that hold data (STUB, to be implemented).

MaterializedFeatureStore inherits it. It relies on ``self.config``, ``self.metadata``,
``self.events`` and on the store's ``scan_group(...)`` for explicit syncs.
"""

from __future__ import annotations

import polars as pl

from tauro_workbench.registry import WriteRecord
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["OnlineServingMixin"]


class OnlineServingMixin:
    """Adds online sync (on write and explicit) and online reads to a store."""

    def _sync_after_write(self, schema: FeatureGroupSchema, data: pl.DataFrame, record: WriteRecord) -> None:
        """Push the latest row per entity of ``data`` online when ``sync_to_online`` is set."""
        return None
