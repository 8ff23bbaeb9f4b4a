"""InMemoryOnlineStore: the default online store, in process and thread-safe.

It is a real store, not a mock: the same semantics as Redis (see :mod:`tauro_workbench.online.base`)
with Python values kept as they are (nothing is serialized). Expired rows are dropped when read.
Returned nested values (lists, dicts) are the stored objects: do not mutate them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import polars as pl

from tauro_workbench.online.base import OnlineRow, WriteResult
from tauro_workbench.online.codec import encode_entity, entity_key_expr, latest_per_entity, order_prefix_expr
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["InMemoryOnlineStore"]

# order prefix, event time in epoch microseconds (None: no event time), values in schema order
_Entry = tuple[str, int | None, tuple[Any, ...]]


class InMemoryOnlineStore:
    """Latest feature values per entity in a dict per group, guarded by one lock.

    Example:
        >>> store = InMemoryOnlineStore()
        >>> store.write(user_features, frame)  # doctest: +SKIP
        >>> store.read(user_features, [(1,)], ["age"])  # doctest: +SKIP
        [(42,)]
    """

    kind = "memory"

    def __init__(self) -> None:
        self._groups: dict[tuple[str, int], dict[str, _Entry]] = {}
        self._positions: dict[tuple[str, int], dict[str, int]] = {}
        self._tokens: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def write(
        self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, progress: bool = False
    ) -> WriteResult:
        """Upsert the latest row per entity of ``frame``; older rows never replace newer ones."""
        entries = self._entries(schema, frame)
        group = (schema.name, schema.version)
        applied = 0
        with self._lock:
            table = self._groups.setdefault(group, {})
            self._positions.setdefault(group, {n: i for i, n in enumerate(schema.feature_names)})
            for key, entry in entries:
                current = table.get(key)
                if current is None or current[0] <= entry[0]:
                    table[key] = entry
                    applied += 1
        return WriteResult(entities=len(entries), applied=applied)

    def replace(
        self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, progress: bool = False
    ) -> WriteResult:
        """Make the group hold exactly the latest row per entity of ``frame`` (one atomic swap)."""
        entries = self._entries(schema, frame)
        table = dict(entries)
        group = (schema.name, schema.version)
        with self._lock:
            self._groups[group] = table
            self._positions[group] = {n: i for i, n in enumerate(schema.feature_names)}
        return WriteResult(entities=len(entries), applied=len(entries))

    @staticmethod
    def _entries(schema: FeatureGroupSchema, frame: pl.DataFrame) -> list[tuple[str, _Entry]]:
        latest = latest_per_entity(schema, frame)
        features = schema.feature_names
        event = (
            pl.col(schema.timestamp_key).dt.epoch("us") if schema.timestamp_key else pl.lit(None, pl.Int64)
        )
        prepared = latest.select(
            entity_key_expr(latest.schema, schema.entity_keys).alias("__key"),
            order_prefix_expr(schema).alias("__order"),
            event.alias("__event"),
        )
        keys = prepared.get_column("__key").to_list()
        orders = prepared.get_column("__order").to_list()
        events = prepared.get_column("__event").to_list()
        values = latest.select(features).rows() if features else [()] * latest.height
        return [
            (key, (order, event_us, row))
            for key, order, event_us, row in zip(keys, orders, events, values, strict=True)
        ]

    def read(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[OnlineRow]:
        """Return each entity's live values of ``features`` (None: missing or past the ttl)."""
        keys = [encode_entity(e, schema.entity_keys) for e in entities]
        group = (schema.name, schema.version)
        ttl = schema.ttl
        oldest = None if ttl is None else time.time_ns() // 1000 - int(ttl.total_seconds() * 1_000_000)
        out: list[OnlineRow] = []
        with self._lock:
            table = self._groups.get(group)
            if table is None:
                return [None] * len(keys)
            positions = self._positions[group]
            index = [positions[f] for f in features]
            for key in keys:
                entry = table.get(key)
                if entry is None:
                    out.append(None)
                elif oldest is not None and entry[1] is not None and entry[1] < oldest:
                    del table[key]
                    out.append(None)
                else:
                    row = entry[2]
                    out.append(tuple(row[i] for i in index))
        return out

    def read_event_times(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]]
    ) -> list[int | None]:
        """Return each entity's stored event time in epoch microseconds (None: no row, no event time).

        The ttl is not applied: a historical read applies it relative to each entity row's time.
        """
        keys = [encode_entity(e, schema.entity_keys) for e in entities]
        with self._lock:
            table = self._groups.get((schema.name, schema.version)) or {}
            return [None if (entry := table.get(key)) is None else entry[1] for key in keys]

    def read_columns(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[pl.Series]:
        """Return one typed Series per feature, a value per entity (null: missing or expired)."""
        rows = self.read(schema, entities, features)
        empty = (None,) * len(features)
        columns = list(zip(*(empty if row is None else row for row in rows), strict=True)) or [()] * len(
            features
        )
        return [
            pl.Series(name, values, dtype=schema.get_feature(name).polars_dtype)
            for name, values in zip(features, columns, strict=True)
        ]

    def get_sync_token(self, schema: FeatureGroupSchema) -> str | None:
        """Return the group's token (None until set; lost with the process)."""
        with self._lock:
            return self._tokens.get((schema.name, schema.version))

    def set_sync_token(self, schema: FeatureGroupSchema, token: str) -> None:
        """Mark the group's online copy with ``token``."""
        with self._lock:
            self._tokens[(schema.name, schema.version)] = token

    def delete_group(self, schema: FeatureGroupSchema) -> int:
        """Delete every row of the group and its token; return the number of rows deleted."""
        group = (schema.name, schema.version)
        with self._lock:
            self._tokens.pop(group, None)
            self._positions.pop(group, None)
            return len(self._groups.pop(group, {}))

    def ping(self) -> None:
        """Return: the store lives in this process, so it always answers."""

    def health_check(self) -> bool:
        """Always True: the store lives in this process."""
        return True

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        with self._lock:
            sizes = {f"{g}:v{v}": len(t) for (g, v), t in self._groups.items()}
        return f"InMemoryOnlineStore({sizes})"
