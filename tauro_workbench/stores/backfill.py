"""Backfill input: the rows of one event-time window, read and validated chunk by chunk.

A backfill replaces exactly the ``[start, end)`` window of a group's event time. Its source is a
frame (only its rows inside the window are used) or a callable ``source(chunk_start, chunk_end)``
returning the rows of one chunk. Long windows are processed in day or month chunks (with a
progress bar once :func:`~tauro_workbench.progress.enable_progress` is on); every chunk is
validated, and the store then commits all of them in one transaction, so a failed chunk writes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal

import polars as pl
from loguru import logger

from tauro_workbench.exceptions import PointInTimeError, SchemaValidationError
from tauro_workbench.frames import FrameLike, to_lazyframe, to_utc, utc_datetime_expr
from tauro_workbench.progress import progress_bar
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["ChunkBy", "Source", "load_window", "plan_chunks"]

ChunkBy = Literal["day", "month", "none"]
Source = Callable[[datetime, datetime], FrameLike]


def plan_chunks(
    start: datetime, end: datetime, *, chunk_by: ChunkBy | None = None
) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into consecutive chunks (None: months above 62 days, days above 2).

    Example:
        >>> from datetime import datetime, timezone
        >>> a = datetime(2024, 1, 1, tzinfo=timezone.utc)
        >>> len(plan_chunks(a, datetime(2024, 1, 4, tzinfo=timezone.utc), chunk_by="day"))
        3
    """
    if chunk_by is None:
        span = end - start
        chunk_by = "month" if span > timedelta(days=62) else "day" if span > timedelta(days=2) else "none"
    if chunk_by == "none":
        return [(start, end)]
    every = "1mo" if chunk_by == "month" else "1d"
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if chunk_by == "month":
        first = first.replace(day=1)
    cuts = pl.datetime_range(first, end, every, eager=True, time_unit="us", time_zone="UTC").to_list()
    bounds = sorted({start, *(c for c in cuts if start < c < end), end})
    return list(pairwise(bounds))


def load_window(
    schema: FeatureGroupSchema,
    source: FrameLike | Source,
    start: datetime | str,
    end: datetime | str,
    *,
    chunk_by: ChunkBy | None = None,
) -> tuple[pl.DataFrame, datetime, datetime]:
    """Return the validated rows of ``[start, end)`` from ``source``, with the UTC bounds.

    Raises:
        PointInTimeError: If the group has no event time or ``start >= end``.
        SchemaValidationError: If a chunk breaks the schema (naming the chunk).
    """
    column = schema.timestamp_key
    if column is None:
        raise PointInTimeError(
            f"feature group {schema.name!r} has no timestamp_key, so it has no event-time window to backfill",
            hint="Use write_features(..., mode='overwrite') instead.",
        )
    lo, hi = to_utc(start), to_utc(end)
    if lo >= hi:
        raise PointInTimeError(f"backfill window is empty: start {lo.isoformat()} >= end {hi.isoformat()}")
    chunks = plan_chunks(lo, hi, chunk_by=chunk_by)
    frame = None if callable(source) else to_lazyframe(source)
    parts: list[pl.DataFrame] = []
    for chunk_start, chunk_end in progress_bar(chunks, desc=f"backfill {schema.name}", unit="chunk"):
        rows = frame if frame is not None else to_lazyframe(source(chunk_start, chunk_end))  # type: ignore[operator]
        dtype = rows.collect_schema().get(column)
        if dtype is None:
            raise SchemaValidationError(f"missing columns [{column!r}] (the event time)", group=schema.name)
        when = utc_datetime_expr(column, dtype)
        rows = rows.filter((when >= chunk_start) & (when < chunk_end))
        try:
            parts.append(schema.validate(rows))
        except SchemaValidationError as err:
            raise SchemaValidationError(
                [f"chunk [{chunk_start.isoformat()}, {chunk_end.isoformat()}): {p}" for p in err.problems],
                group=schema.name,
            ) from err
    data = pl.concat(parts, how="vertical") if parts else pl.DataFrame()
    logger.debug("backfill {}: {} rows in {} chunk(s)", schema.name, data.height, len(chunks))
    return data, lo, hi
