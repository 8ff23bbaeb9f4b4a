"""The point-in-time (as-of) join (PLACEHOLDER reference implementation, to be replaced).

Semantics (ARCHITECTURE.md section 5): for each entity row with keys k and time t, candidates
are feature rows with keys k and event_time <= t (and >= t - ttl when a ttl is set); the winner
has the greatest event_time, ties broken by the tie-breaker columns (greatest wins). Exactly one
output row per input row, in input order, every input column kept; no match gives nulls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import polars as pl

from tauro_workbench.exceptions import PointInTimeError
from tauro_workbench.frames import utc_datetime_expr

__all__ = ["PointInTimeSpec", "point_in_time_join"]

_ROW = "__tauro_row"
_EVENT = "__tauro_event_time"


@dataclass(frozen=True)
class PointInTimeSpec:
    """What to join: keys, the two time columns, features, ttl and tie-breakers."""

    entity_keys: tuple[str, ...]
    entity_time: str
    event_time: str
    feature_columns: tuple[str, ...]
    output_names: tuple[str, ...] | None = None
    ttl: timedelta | None = None
    tie_breakers: tuple[str, ...] = ()

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output column names (``output_names`` or the feature columns)."""
        return self.output_names or self.feature_columns


def point_in_time_join(
    entity: pl.LazyFrame,
    features: pl.LazyFrame,
    spec: PointInTimeSpec,
    *,
    engine: Literal["polars", "duckdb"] = "polars",
) -> pl.LazyFrame:
    """Join ``features`` onto ``entity`` as of each entity row's time (see module docstring)."""
    entity_schema = entity.collect_schema()
    clash = [c for c in spec.outputs if c in entity_schema]
    if clash:
        raise PointInTimeError(f"output columns {clash} already exist in the entity frame")
    keys = list(spec.entity_keys)
    feat_schema = features.collect_schema()
    left = entity.with_row_index(_ROW).with_columns(
        utc_datetime_expr(spec.entity_time, entity_schema[spec.entity_time]).alias(_EVENT + "_l"),
        *[pl.col(k).cast(feat_schema[k]) for k in keys],
    )
    right = (
        features.select([*keys, spec.event_time, *spec.tie_breakers, *spec.feature_columns])
        .sort([spec.event_time, *spec.tie_breakers], nulls_last=False)
        .unique(subset=[*keys, spec.event_time], keep="last", maintain_order=True)
        .rename({spec.event_time: _EVENT})
        .drop(list(spec.tie_breakers))
        .rename(dict(zip(spec.feature_columns, spec.outputs, strict=True)))
        .sort(_EVENT)
    )
    joined = left.sort(_EVENT + "_l").join_asof(
        right, left_on=_EVENT + "_l", right_on=_EVENT, by=keys, strategy="backward"
    )
    if spec.ttl is not None:
        expired = pl.col(_EVENT) < pl.col(_EVENT + "_l") - pl.lit(spec.ttl)
        joined = joined.with_columns(
            [pl.when(expired).then(None).otherwise(pl.col(c)).alias(c) for c in spec.outputs]
        )
    original_keys = [pl.col(k).cast(entity_schema[k]) for k in keys]
    return joined.sort(_ROW).drop([_ROW, _EVENT, _EVENT + "_l"]).with_columns(original_keys).select(
        [*entity_schema, *spec.outputs]
    )
