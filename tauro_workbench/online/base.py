"""The :class:`OnlineStore` protocol every online backend implements, and its semantics.

An online store holds the latest row per entity per feature group (group and version):

- a write never replaces a stored row with an older one: rows are ordered by
  ``(event time, created time)``; on a tie the later write wins; groups without an event time
  keep the last write;
- a row whose event time is older than ``now - ttl`` reads as null (and Redis expires it);
- an entity never written reads as null;
- :meth:`OnlineStore.replace` (a full resync) makes the group hold exactly the given rows:
  nothing of the previous state survives (not even newer rows), and readers see the previous
  state or the new one, never an empty or half-loaded group.

Writes take frames already validated against the group schema and keep the latest row per
entity of the frame themselves, so a backend is correct on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import polars as pl

from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["OnlineRow", "OnlineStore", "WriteResult"]

#: The values of the requested features of one entity, in request order (None: no live row).
OnlineRow = tuple[Any, ...] | None


@dataclass(frozen=True)
class WriteResult:
    """What an online write did.

    Attributes:
        entities: Distinct entities sent (the latest row of each).
        applied: Entities whose stored row was replaced (the others held a newer row).
        batches: Round trips used.
    """

    entities: int
    applied: int
    batches: int = 1


@runtime_checkable
class OnlineStore(Protocol):
    """A key-value store of the latest feature values per entity."""

    kind: str

    def write(
        self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, progress: bool = False
    ) -> WriteResult:
        """Upsert the latest row per entity of ``frame`` (validated against ``schema``)."""
        ...

    def replace(
        self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, progress: bool = False
    ) -> WriteResult:
        """Replace the group's rows with the latest row per entity of ``frame``, atomically."""
        ...

    def read(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[OnlineRow]:
        """Return, per entity (key values in ``schema.entity_keys`` order), its live values."""
        ...

    def read_columns(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[pl.Series]:
        """Return one Series per feature (typed by the schema), a value per entity (null: none)."""
        ...

    def read_event_times(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]]
    ) -> list[int | None]:
        """Return each entity's stored event time (epoch microseconds), ttl not applied (None: no row)."""
        ...

    def get_sync_token(self, schema: FeatureGroupSchema) -> str | None:
        """Return the token marking the group's online copy (None if the copy was lost)."""
        ...

    def set_sync_token(self, schema: FeatureGroupSchema, token: str) -> None:
        """Mark the group's online copy with ``token``."""
        ...

    def delete_group(self, schema: FeatureGroupSchema) -> int:
        """Delete every row of the group (and its token); return how many rows were deleted."""
        ...

    def ping(self) -> None:
        """Check that the store answers; raise :class:`OnlineStoreError` naming the error if not."""
        ...

    def health_check(self) -> bool:
        """Return True when the store answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
