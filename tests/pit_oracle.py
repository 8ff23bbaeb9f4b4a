"""Brute-force point-in-time oracle: ARCHITECTURE.md section 5, literally, in Python loops.

Import it to test any store or engine::

    from tests.pit_oracle import oracle_point_in_time, oracle_latest

For every entity row it scans every feature row (O(n*m)), so keep inputs to a few hundred rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from tauro_workbench.engines.pit import PointInTimeSpec

__all__ = ["oracle_latest", "oracle_point_in_time", "utc_instant"]


def utc_instant(value: datetime | date | None) -> datetime | None:
    """Return ``value`` as an aware UTC datetime; naive datetimes and dates are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _rank(row: dict[str, Any], position: int, spec: PointInTimeSpec) -> tuple[Any, ...]:
    """Order of candidates: event time, then each tie-breaker (null lowest), then position."""
    parts: list[Any] = [utc_instant(row[spec.event_time])]
    for column in spec.tie_breakers:
        value = row[column]
        parts.append((0, 0) if value is None else (1, value))
    parts.append(position)
    return tuple(parts)


def _winner(
    feature_rows: list[dict[str, Any]],
    keys: tuple[Any, ...],
    at: datetime | None,
    spec: PointInTimeSpec,
    *,
    apply_ttl: bool = True,
) -> dict[str, Any] | None:
    if any(k is None for k in keys):
        return None
    best: tuple[tuple[Any, ...], dict[str, Any]] | None = None
    for position, row in enumerate(feature_rows):
        if tuple(row[k] for k in spec.entity_keys) != keys:
            continue
        event = utc_instant(row[spec.event_time])
        if event is None:
            continue
        if at is not None and event > at:
            continue
        if at is not None and apply_ttl and spec.ttl is not None and event < at - spec.ttl:
            continue
        rank = _rank(row, position, spec)
        if best is None or rank > best[0]:
            best = (rank, row)
    return None if best is None else best[1]


def oracle_point_in_time(entity: pl.DataFrame, features: pl.DataFrame, spec: PointInTimeSpec) -> pl.DataFrame:
    """Return the point-in-time join of ``features`` onto ``entity``, computed row by row."""
    feature_rows = features.rows(named=True)
    out: list[dict[str, Any]] = []
    for row in entity.rows(named=True):
        at = utc_instant(row[spec.entity_time])
        keys = tuple(row[k] for k in spec.entity_keys)
        win = None if at is None else _winner(feature_rows, keys, at, spec)
        values = {
            o: None if win is None else win[c]
            for c, o in zip(spec.feature_columns, spec.outputs, strict=True)
        }
        out.append({**row, **values})
    schema = {
        **entity.schema,
        **{o: features.schema[c] for c, o in zip(spec.feature_columns, spec.outputs, strict=True)},
    }
    return pl.DataFrame(out, schema=schema, orient="row")


def oracle_latest(
    features: pl.DataFrame,
    spec: PointInTimeSpec,
    *,
    as_of: datetime | None = None,
    entities: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Return the latest row per entity (keys, event time, outputs) like ``latest_per_entity``.

    Without ``entities``: every entity with a candidate, sorted by key (nulls last). With
    ``as_of=None`` the ttl is not applied.
    """
    feature_rows = features.rows(named=True)
    at = utc_instant(as_of)
    if entities is None:
        seen = {tuple(r[k] for k in spec.entity_keys) for r in feature_rows}
        wanted = [k for k in seen if all(v is not None for v in k)]
        wanted.sort()
        key_schema = {k: features.schema[k] for k in spec.entity_keys}
    else:
        wanted = [tuple(r[k] for k in spec.entity_keys) for r in entities.rows(named=True)]
        key_schema = {k: entities.schema[k] for k in spec.entity_keys}
    out: list[dict[str, Any]] = []
    for keys in wanted:
        win = _winner(feature_rows, keys, at, spec, apply_ttl=at is not None)
        if win is None and entities is None:
            continue
        row = dict(zip(spec.entity_keys, keys, strict=True))
        row[spec.event_time] = None if win is None else win[spec.event_time]
        row.update(
            {
                o: None if win is None else win[c]
                for c, o in zip(spec.feature_columns, spec.outputs, strict=True)
            }
        )
        out.append(row)
    schema = {**key_schema, spec.event_time: features.schema[spec.event_time]}
    schema.update({o: features.schema[c] for c, o in zip(spec.feature_columns, spec.outputs, strict=True)})
    return pl.DataFrame(out, schema=schema, orient="row")
