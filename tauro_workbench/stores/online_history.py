"""Point-in-time join of an online-only group: the one row per entity the online store holds.

A group is *online-only* when its rows exist only in the online store: it has no readable
virtual definition and its offline table holds nothing (never written offline in this repo, or
its table is gone), while the online store holds the group's latest row per entity (synced
for its version). A historical read of such a group is routed ``online`` by the hybrid router
and joined here with the point-in-time rule applied to that one row: an entity row gets the
stored values when the row's event time is ``<=`` the entity row's time and, with a ttl, no
older than ``entity time - ttl``; otherwise nulls. Groups without an event time join the stored
row unconditionally (as every store joins them).

A ``get_features`` read naming its entities is served the same way, as of its instant (or
now, with no upper bound: the latest row wins). Online-only history is only as good as the
latest value: an entity row older than the stored
row's event time gets nulls even if older values existed once, and rows the online store
already expired (past the ttl relative to *now*) are gone.

Example:
    >>> joined = join_online_latest(online, schema, features, outputs, entity_df, "ts")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from tauro_workbench.frames import to_utc
from tauro_workbench.online.base import OnlineStore
from tauro_workbench.retrieval import GroupRequest
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["join_online_latest", "read_online_latest"]

_EVENT = "__tauro_online_event_us"
_ROW = "__tauro_online_row"
_AT = "__tauro_online_read_at"


def join_online_latest(
    online: OnlineStore,
    schema: FeatureGroupSchema,
    features: Sequence[str],
    outputs: Sequence[str],
    entity_df: pl.DataFrame,
    time_column: str,
    *,
    bounded: bool = True,
) -> pl.DataFrame:
    """Join the online latest row per entity onto ``entity_df`` as of each row's time.

    Args:
        online: The online store holding the group.
        schema: The group read.
        features: Its features read, named ``outputs`` in the result.
        entity_df: The entity rows (the group's key columns and ``time_column``).
        time_column: The entity rows' time column.
        bounded: With False, a stored row later than the entity row's time still counts (a
            latest read: the latest row ever written wins; the ttl still counts back from the
            entity row's time).

    Returns:
        ``entity_df`` (same rows, same order) with one column per output.

    Example:
        >>> join_online_latest(store.online, schema, ["age"], ["age"], labels, "ts")  # doctest: +SKIP
    """
    keys = list(schema.entity_keys)
    distinct = entity_df.select(keys).unique(maintain_order=True).drop_nulls()
    entities = distinct.rows()
    values = (
        online.read_columns(schema, entities, list(features))
        if entities
        else [pl.Series(f, [], dtype=schema.get_feature(f).polars_dtype) for f in features]
    )
    events = online.read_event_times(schema, entities) if entities else []
    found = distinct.with_columns(
        pl.Series(_EVENT, events, dtype=pl.Int64),
        *[series.alias(out) for series, out in zip(values, outputs, strict=True)],
    )
    joined = entity_df.with_row_index(_ROW).join(found, on=keys, how="left").sort(_ROW)
    if schema.timestamp_key is None:
        live = pl.col(_EVENT).is_not_null() | pl.any_horizontal([pl.col(o).is_not_null() for o in outputs])
    else:
        at = (
            pl.col(time_column).cast(pl.Datetime("us"))
            if entity_df.schema[time_column] == pl.Date
            else (pl.col(time_column))
        )
        at_us = at.dt.epoch("us")
        live = pl.col(_EVENT).is_not_null()
        if bounded:
            live = live & (pl.col(_EVENT) <= at_us)
        if schema.ttl is not None:
            live = live & (pl.col(_EVENT) >= at_us - int(schema.ttl.total_seconds() * 1_000_000))
    return joined.with_columns(
        [pl.when(live).then(pl.col(o)).otherwise(None).alias(o) for o in outputs]
    ).select([*entity_df.columns, *outputs])


def read_online_latest(
    online: OnlineStore, request: GroupRequest, ids: pl.DataFrame, point_in_time: datetime | None
) -> pl.DataFrame:
    """Return the online latest row of each entity in ``ids`` (``get_features`` of the group).

    As of ``point_in_time``; without it the latest row wins, its ttl counted back from now, as
    in :meth:`~tauro_workbench.stores.materialized.MaterializedFeatureStore.get_features`.

    Returns:
        The key columns (one row per row of ``ids``, in order) then ``request.outputs``.
    """
    instant = datetime.now(UTC) if point_in_time is None else to_utc(point_in_time)
    entity = ids.select(request.schema.entity_keys).with_columns(pl.lit(instant).alias(_AT))
    joined = join_online_latest(
        online,
        request.schema,
        request.features,
        request.outputs,
        entity,
        _AT,
        bounded=point_in_time is not None,
    )
    return joined.drop(_AT)
