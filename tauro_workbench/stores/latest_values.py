"""Latest value per entity (optionally as of an instant), and its ttl, for ``get_features``.

Semantics (ARCHITECTURE.md section 5 with every entity at one instant ``t``): per group, the
candidates of an entity are its rows with ``event_time <= t``; the winner has the greatest event
time, then the greatest created time, then the greatest ``_tauro_seq`` (written later). A group
ttl then nulls a winner older than ``t - ttl`` (``t`` = the point in time, or now): since the
winner is the newest candidate, this equals filtering the candidates to the closed window first.

:func:`latest_rows` applies the same rule to rows in memory (the online sync).

Requested entities: one output row per requested entity, in request order (duplicates kept),
nulls where a group has no value (Feast-like). No entities: every entity that has a live value
in at least one group (a full outer join on the shared keys), sorted by the keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from tauro_workbench.exceptions import PointInTimeError
from tauro_workbench.frames import to_utc
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.stores.offline_table import DATE_COLUMN, SEQ_COLUMN

__all__ = ["GroupRead", "apply_ttl", "join_latest", "latest_rows", "latest_values", "window_filter"]


def _seen(group: str) -> str:
    return f"__tauro_seen_{group}"


@dataclass(frozen=True)
class GroupRead:
    """One group's part of a read: its schema, table scan and requested features."""

    schema: FeatureGroupSchema
    scan: pl.LazyFrame
    features: tuple[str, ...]
    outputs: tuple[str, ...]


def _latest(read: GroupRead, ids: pl.DataFrame | None, when: datetime | None) -> pl.LazyFrame:
    schema = read.schema
    keys = list(schema.entity_keys)
    event = schema.timestamp_key
    order = [c for c in (event, schema.created_timestamp_key, SEQ_COLUMN) if c is not None]
    lf = read.scan.select([*keys, *order, *read.features])
    if ids is not None:
        # is_in per key column is pushed into the Parquet scan (row-group skipping); the exact
        # tuple match of composite keys is the join that follows
        table_types = read.scan.collect_schema()
        for key in keys:
            values = ids.get_column(key).unique().cast(table_types[key], strict=False).drop_nulls()
            lf = lf.filter(pl.col(key).is_in(values.implode()))
    if when is not None and event is not None:
        lf = lf.filter(pl.col(event) <= when)
    seen = pl.col(event) if event is not None else pl.col(SEQ_COLUMN)
    return (
        lf.sort(order, nulls_last=False)
        .unique(subset=keys, keep="last")
        .select(
            [
                *keys,
                seen.alias(_seen(schema.name)),
                *[pl.col(f).alias(o) for f, o in zip(read.features, read.outputs, strict=True)],
            ]
        )
    )


def latest_rows(schema: FeatureGroupSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """Return the latest offline row per entity, the point-in-time rule of ``get_features``.

    Greatest event time, then created time (nulls first), then ``_tauro_seq`` (written later);
    the ``_tauro_seq`` column is dropped. Without ``_tauro_seq`` (files committed by another
    engine) the frame order breaks the last ties.

    Example:
        >>> latest_rows(user_features, offline_rows)  # doctest: +SKIP
    """
    order = [*schema.time_columns, *([SEQ_COLUMN] if SEQ_COLUMN in frame.columns else [])]
    if order:
        frame = frame.sort(order, nulls_last=False, maintain_order=True)
    latest = frame.unique(subset=schema.entity_keys, keep="last", maintain_order=False)
    return latest.drop(SEQ_COLUMN, strict=False)


def latest_values(
    reads: Sequence[GroupRead], ids: pl.DataFrame | None, when: datetime | None
) -> pl.LazyFrame:
    """Return the plan of the latest values (before ttl; see :func:`apply_ttl`).

    Raises:
        PointInTimeError: If no entities are given and the groups have different entity keys,
            or an entity id cannot be compared with the stored key type.
    """
    if ids is None:
        key_sets = {tuple(r.schema.entity_keys) for r in reads}
        if len(key_sets) > 1:
            raise PointInTimeError(
                f"the requested groups have different entity keys {sorted(key_sets)}, so 'every entity' is undefined",
                hint="Pass entity_ids with every key column.",
            )
        keys = list(reads[0].schema.entity_keys)
        result = _latest(reads[0], None, when)
        for read in reads[1:]:
            result = result.join(_latest(read, None, when), on=keys, how="full", coalesce=True)
        return result.sort(keys)
    result = ids.lazy()
    for read in reads:
        keys = list(read.schema.entity_keys)
        table_types = read.scan.collect_schema()
        try:
            casts = [pl.col(k).cast(table_types[k]) for k in keys]
            ids.select(casts)
        except pl.exceptions.PolarsError as err:
            wanted = {k: str(table_types[k]) for k in keys}
            raise PointInTimeError(
                f"entity ids of group {read.schema.name!r} do not fit the stored key types {wanted}: {err}",
                hint="Pass ids of the key's type (e.g. integers for integer keys).",
            ) from err
        latest = _latest(read, ids, when)
        result = result.with_columns(casts).join(latest, on=keys, how="left", maintain_order="left")
    return result


def apply_ttl(
    frame: pl.LazyFrame,
    schemas: Mapping[str, FeatureGroupSchema],
    outputs: Mapping[str, Sequence[str]],
    when: datetime | None,
    *,
    every_entity: bool,
) -> pl.LazyFrame:
    """Null features older than their group's ttl (relative to ``when`` or now), drop helpers.

    With ``every_entity`` (no ids were requested), entities left with no live value are dropped.
    """
    reference = when if when is not None else datetime.now(UTC)
    live: list[pl.Expr] = []
    masks: list[pl.Expr] = []
    for group, schema in schemas.items():
        seen = pl.col(_seen(group))
        alive = seen.is_not_null()
        if schema.ttl is not None and schema.timestamp_key is not None:
            alive = alive & (seen >= reference - schema.ttl)
            masks += [pl.when(alive).then(pl.col(o)).otherwise(None).alias(o) for o in outputs[group]]
        live.append(alive)
    if masks:
        frame = frame.with_columns(masks)
    if every_entity:
        frame = frame.filter(pl.any_horizontal(live))
    return frame.drop([_seen(g) for g in schemas])


def join_latest(
    out: pl.LazyFrame,
    scan: pl.LazyFrame,
    schema: FeatureGroupSchema,
    features: tuple[str, ...],
    outputs: tuple[str, ...],
) -> pl.LazyFrame:
    """Left-join the latest row per entity of a group that has no event time."""
    have = out.collect_schema()
    clash = [o for o in outputs if o in have]
    if clash:
        raise PointInTimeError(f"output columns {clash} already exist in the entity frame")
    keys = list(schema.entity_keys)
    latest = (
        scan.select([*keys, SEQ_COLUMN, *features])
        .sort(SEQ_COLUMN, nulls_last=False)
        .unique(subset=keys, keep="last")
        .select(
            [
                *[pl.col(k).cast(have[k], strict=False) for k in keys],
                *[pl.col(f).alias(o) for f, o in zip(features, outputs, strict=True)],
            ]
        )
    )
    return out.join(latest, on=keys, how="left", maintain_order="left")


def window_filter(
    schema: FeatureGroupSchema,
    available: pl.Schema,
    start: datetime | str | None,
    end: datetime | str | None,
) -> pl.Expr:
    """Return the filter of event times in ``[start, end)`` (naive = UTC), pruning date partitions."""
    column = schema.timestamp_key
    if column is None:
        raise PointInTimeError(f"group {schema.name!r} has no timestamp_key, so start/end cannot filter it")
    condition = pl.lit(True)
    # the redundant date bounds let a date-partitioned table skip whole partitions
    if start is not None:
        lo = to_utc(start)
        condition = condition & (pl.col(column) >= lo)
        if DATE_COLUMN in available:
            condition = condition & (pl.col(DATE_COLUMN) >= lo.date())
    if end is not None:
        hi = to_utc(end)
        condition = condition & (pl.col(column) < hi)
        if DATE_COLUMN in available:
            condition = condition & (pl.col(DATE_COLUMN) <= hi.date())
    return condition
