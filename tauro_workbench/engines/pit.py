"""The point-in-time (as-of) join: the one operation every training set is built on.

Semantics (ARCHITECTURE.md section 5). For each entity row with keys k and time t, the
candidates are the feature rows with keys k and ``event_time <= t``; with a ``ttl`` also
``event_time >= t - ttl`` (a closed window). The winner has the greatest event time; ties are
broken by the spec's ``tie_breakers`` in order (greatest wins, null lowest) and, when even those
are equal, by the later row of the feature frame. Exactly one output row per input row, in input
order, every input column unchanged; no match gives nulls, and so do null keys or a null entity
time. Times are compared in UTC; naive datetimes and dates are taken as UTC.

How it runs: a narrow match over (keys, event time) picks the winning feature row per entity
row, then only the winning rows' feature columns are fetched in one streaming pass. Wide
feature columns are never sorted or held in full, which keeps a 1M x 10M join under 1 GB.
With a single integer key (Polars engine) key and event time are packed into one Int64:
sorted once as values, binary-searched per entity row, and the winners fetched by value, their
ties settled in that same pass (:mod:`tauro_workbench.engines.pit_match`, which also has the
version for feature frames small enough to hold in memory). Other keys use ``join_asof`` over
(keys, event time, row position), with tie-breakers read only for rows sharing key and event
time, and the winners fetched by position. On DuckDB the match is one ``ASOF JOIN``; the Spark
version lives in :mod:`tauro_workbench.engines.pit_spark`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl
from loguru import logger

from tauro_workbench.engines.pit_match import in_memory_winners, packed_join
from tauro_workbench.exceptions import PointInTimeError
from tauro_workbench.frames import UTC_US, to_utc, utc_datetime_expr

__all__ = ["PitEngine", "PointInTimeSpec", "latest_per_entity", "point_in_time_join"]

PitEngine = Literal["polars", "duckdb"]

ROW = "__tauro_row"
LOC = "__tauro_loc"
WON = "__tauro_won_at"
TIME = "__tauro_time"
_RESERVED = "__tauro_"
IN_MEMORY_ROWS = 250_000  # feature rows read once into memory when the caller knows the count


@dataclass(frozen=True)
class PointInTimeSpec:
    """What to join: entity keys, the two time columns, features, ttl and tie-breakers.

    Attributes:
        entity_keys: Key columns present in both frames (their integer widths may differ).
        entity_time: The entity frame's time column (Datetime of any unit/zone, or Date).
        event_time: The feature frame's event-time column.
        feature_columns: Feature columns to bring over.
        output_names: Names of the output columns (defaults to ``feature_columns``).
        ttl: Lookback window; ``None`` looks back without limit.
        tie_breakers: Feature-frame columns (integer, boolean or temporal) that order rows with
            equal event times; the greatest wins and null ranks lowest.
    """

    entity_keys: tuple[str, ...]
    entity_time: str
    event_time: str
    feature_columns: tuple[str, ...]
    output_names: tuple[str, ...] | None = None
    ttl: timedelta | None = None
    tie_breakers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.entity_keys:
            raise PointInTimeError("a point-in-time join needs at least one entity key")
        if self.output_names is not None and len(self.output_names) != len(self.feature_columns):
            raise PointInTimeError(
                f"output_names {list(self.output_names)} must name each of the feature columns "
                f"{list(self.feature_columns)} once"
            )
        if len(set(self.outputs)) != len(self.outputs):
            raise PointInTimeError(
                f"output columns {list(self.outputs)} contain duplicates",
                hint="Give every feature a distinct output name (e.g. full_feature_names=True).",
            )
        if self.ttl is not None and self.ttl < timedelta(0):
            raise PointInTimeError(f"ttl must not be negative, got {self.ttl}")
        overlap = sorted(set(self.tie_breakers) & {*self.entity_keys, self.event_time})
        if overlap:
            raise PointInTimeError(
                f"tie-breakers {overlap} are entity keys or the event time; they cannot break ties"
            )
        names = [*self.entity_keys, self.entity_time, self.event_time, *self.feature_columns]
        names += [*self.outputs, *self.tie_breakers]
        reserved = sorted({n for n in names if n.startswith(_RESERVED)})
        if reserved:
            raise PointInTimeError(f"column names {reserved} use the reserved prefix {_RESERVED!r}")

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output column names (``output_names`` or the feature columns)."""
        return self.output_names or self.feature_columns


def point_in_time_join(
    entity: pl.LazyFrame,
    features: pl.LazyFrame,
    spec: PointInTimeSpec,
    *,
    engine: PitEngine = "polars",
    feature_rows: int | None = None,
) -> pl.LazyFrame:
    """Join ``features`` onto ``entity`` as of each entity row's time.

    The result is lazy: the join runs when it is collected. Both frames are read once narrow
    (keys and times) and the feature frame once more for the winning rows' feature columns, so
    ``features`` must yield its rows in the same order each time it is collected (any scan or
    in-memory frame does).

    Args:
        entity: The entity rows (e.g. labels) with the keys and ``spec.entity_time``.
        features: The feature rows with the keys, ``spec.event_time``, the tie-breakers and the
            feature columns.
        spec: What to join (see :class:`PointInTimeSpec`).
        engine: ``"polars"`` (default) or ``"duckdb"``; both give identical results.
        feature_rows: The feature frame's row count when known without reading it (e.g. from
            table metadata). Up to :data:`IN_MEMORY_ROWS` rows, the needed columns are read
            once into memory and every pass runs there: for small inputs the fixed cost of
            reading a scan two or three times outweighs the memory saved.

    Returns:
        Every entity column unchanged, in input order, followed by ``spec.outputs``.

    Raises:
        PointInTimeError: For a missing column, an output name that already exists in the
            entity frame, unjoinable key types, or a time column that is not a date/datetime.

    Example:
        >>> spec = PointInTimeSpec(("user_id",), "ts", "event_time", ("amount",),
        ...                        ttl=timedelta(days=7))
        >>> point_in_time_join(labels.lazy(), amounts.lazy(), spec).collect()  # doctest: +SKIP
    """
    if engine not in ("polars", "duckdb"):
        raise PointInTimeError(f"unknown point-in-time engine {engine!r}; use 'polars' or 'duckdb'")
    entity_schema = dict(entity.collect_schema())
    feature_schema = dict(features.collect_schema())
    check_columns(spec, entity_schema, feature_schema)
    out_schema = {
        **entity_schema,
        **dict(zip(spec.outputs, (feature_schema[c] for c in spec.feature_columns), strict=True)),
    }

    small = feature_rows is not None and feature_rows <= IN_MEMORY_ROWS
    needed = list(
        dict.fromkeys((*spec.entity_keys, spec.event_time, *spec.tie_breakers, *spec.feature_columns))
    )

    def run() -> pl.DataFrame:
        if not small:
            frame = entity.collect()
            joined = packed_join(frame, features, spec, feature_schema) if engine == "polars" else None
            if joined is not None:
                return frame.hstack(joined.get_columns())
            matches = _match(frame, features, spec, entity_schema, feature_schema, engine)
            return frame.hstack(fetch_winners(features, matches, spec, height=frame.height).get_columns())
        # Both frames read at once (two scans run side by side), then every pass in memory.
        frame, held = pl.collect_all([entity, features.select(needed)])
        index = None
        if engine == "polars" and len(spec.entity_keys) == 1:
            logger.debug("point-in-time match in memory for {} entity rows", frame.height)
            index = in_memory_winners(
                frame,
                held,
                key=spec.entity_keys[0],
                entity_time=spec.entity_time,
                event_time=spec.event_time,
                tie_breakers=spec.tie_breakers,
                ttl=spec.ttl,
                feature_schema=feature_schema,
            )
        if index is None:
            matches = _match(frame, held.lazy(), spec, entity_schema, feature_schema, engine)
            index = winner_index(matches, height=frame.height)
        return frame.hstack(gather_winners(held, index, spec).get_columns())

    return pl.defer(run, schema=out_schema)


def check_columns(
    spec: PointInTimeSpec, entity_schema: Mapping[str, pl.DataType], feature_schema: Mapping[str, pl.DataType]
) -> None:
    """Raise :class:`PointInTimeError` unless both frames fit ``spec``."""
    missing_entity = [c for c in (*spec.entity_keys, spec.entity_time) if c not in entity_schema]
    if missing_entity:
        raise PointInTimeError(
            f"the entity frame lacks columns {missing_entity}; it has {list(entity_schema)}",
            hint="Pass the entity keys and the entity time column.",
        )
    needed = (*spec.entity_keys, spec.event_time, *spec.tie_breakers, *spec.feature_columns)
    missing_features = [c for c in needed if c not in feature_schema]
    if missing_features:
        raise PointInTimeError(
            f"the feature frame lacks columns {missing_features}; it has {list(feature_schema)}"
        )
    clash = [c for c in spec.outputs if c in entity_schema]
    if clash:
        raise PointInTimeError(
            f"output columns {clash} already exist in the entity frame",
            hint="Rename those entity columns or use full_feature_names=True.",
        )
    for key in spec.entity_keys:
        left, right = entity_schema[key], feature_schema[key]
        if left != right and not (left.is_integer() and right.is_integer()):
            raise PointInTimeError(
                f"entity key {key!r} is {left} in the entity frame but {right} in the feature frame",
                hint=f"Cast the entity frame's {key!r} to {right}.",
            )
    for column, dtype in (
        (spec.entity_time, entity_schema[spec.entity_time]),
        (spec.event_time, feature_schema[spec.event_time]),
    ):
        if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
            raise PointInTimeError(f"time column {column!r} is {dtype}; expected a Datetime or Date")
    for column in spec.tie_breakers:
        dtype = feature_schema[column]
        if not (dtype.is_integer() or dtype.is_temporal() or dtype == pl.Boolean):
            raise PointInTimeError(
                f"tie-breaker {column!r} is {dtype}; expected an integer, boolean or time column"
            )


def entity_side(
    frame: pl.DataFrame, spec: PointInTimeSpec, feature_schema: Mapping[str, pl.DataType]
) -> pl.DataFrame:
    """Return (row position, keys cast to the feature dtypes, UTC time) of the joinable rows, sorted by time."""
    keys = [pl.col(k).cast(feature_schema[k], strict=False) for k in spec.entity_keys]
    narrow = frame.lazy().select(
        *keys, utc_datetime_expr(spec.entity_time, frame.schema[spec.entity_time]).alias(TIME)
    )
    return narrow.with_row_index(ROW).drop_nulls([*spec.entity_keys, TIME]).sort(TIME).collect()


def feature_side(
    features: pl.LazyFrame,
    spec: PointInTimeSpec,
    feature_schema: Mapping[str, pl.DataType],
    *,
    lower: datetime | None,
    upper: datetime | None,
    sort: bool = True,
) -> pl.DataFrame:
    """Return the joinable feature rows (event time in [lower, upper], no null key or time).

    With ``sort``: (keys, UTC event time, row position ``LOC``) sorted by event time, holding
    only the tie winner of each (keys, event time) (the greatest tie-breakers, then the later
    position), so any as-of match on the result finds the point-in-time winner; integer keys
    are narrowed to Int32 when their values fit. Without: (keys, UTC event time, tie-breakers,
    ``LOC``) in frame order.
    """
    event = utc_datetime_expr(spec.event_time, feature_schema[spec.event_time]).alias(TIME)
    carried = () if sort else spec.tie_breakers
    narrow = features.select(*spec.entity_keys, event, *carried).with_row_index(LOC)
    keep = pl.all_horizontal(pl.col([*spec.entity_keys, TIME]).is_not_null())
    if lower is not None:
        keep &= pl.col(TIME) >= lower
    if upper is not None:
        keep &= pl.col(TIME) <= upper
    # Read streaming, sort eagerly: Polars' eager sort is about twice as fast as its
    # streaming sort on these narrow frames.
    frame = narrow.filter(keep).collect()
    if not sort:
        return frame
    # One single-column arg-sort, then each column gathered and released in turn: a
    # multi-column sort would cost ~50% more time and hold two full copies (peak memory).
    columns = {c: frame[c] for c in frame.columns}
    del frame
    order = columns[TIME].rechunk().arg_sort()
    by_time = pl.DataFrame([_narrowest(columns.pop(c).rechunk()).gather(order) for c in list(columns)])
    del columns, order
    # Rows of one entity sharing an event time all sit in a run of equal event times; only
    # those runs are searched for such duplicates, whose losers are dropped.
    step = by_time[TIME].to_physical().diff()
    in_run = ((step == 0) | (step.shift(-1) == 0)).fill_null(False)
    if not in_run.any():
        return by_time
    where = in_run.arg_true()
    runs = by_time[where]
    duplicated = runs.select([*spec.entity_keys, TIME]).is_duplicated()
    if not duplicated.any():
        return by_time
    tied = runs.filter(duplicated)
    del runs
    if spec.tie_breakers:
        tied = tied.hstack(_tie_breakers(features, spec, tied[LOC]).get_columns())
    order_by = [*spec.entity_keys, TIME, *spec.tie_breakers, LOC]
    losers = tied.sort(order_by, nulls_last=False).filter(
        pl.struct([*spec.entity_keys, TIME]).is_last_distinct().not_()
    )[LOC]
    return by_time.filter(pl.col(LOC).is_in(losers.implode()).not_())


def _narrowest(column: pl.Series) -> pl.Series:
    """Return an Int64 key column as Int32 when every value fits (less memory to sort and hash)."""
    if column.dtype != pl.Int64 or column.len() == 0:
        return column
    low, high = column.min(), column.max()
    assert isinstance(low, int) and isinstance(high, int)
    return column.cast(pl.Int32) if low >= -(2**31) and high < 2**31 else column


def _tie_breakers(features: pl.LazyFrame, spec: PointInTimeSpec, locs: pl.Series) -> pl.DataFrame:
    """Return the tie-breaker columns of the feature rows at positions ``locs`` (in that order).

    Read only for rows of one entity that share an event time, so the big narrow read need
    not carry them.
    """
    fetched = (
        features.select(spec.tie_breakers)
        .with_row_index(LOC)
        .filter(pl.col(LOC).is_in(locs.unique().implode()))
        .collect(engine="streaming")
    )
    if not fetched[LOC].is_sorted():
        fetched = fetched.sort(LOC)
    return fetched.drop(LOC)[fetched[LOC].search_sorted(locs)]


def _match(
    frame: pl.DataFrame,
    features: pl.LazyFrame,
    spec: PointInTimeSpec,
    entity_schema: Mapping[str, pl.DataType],
    feature_schema: Mapping[str, pl.DataType],
    engine: PitEngine,
) -> pl.DataFrame:
    left = entity_side(frame, spec, feature_schema)
    if left.height == 0:
        return pl.DataFrame(schema={ROW: pl.get_index_type(), LOC: pl.get_index_type(), WON: UTC_US})
    # Feature rows outside every entity row's window can never win: prune them (and let
    # scans skip files and row groups by statistics).
    lower_t, upper_t = left[TIME].min(), left[TIME].max()
    assert isinstance(lower_t, datetime) and isinstance(upper_t, datetime)
    lower = None if spec.ttl is None else lower_t - spec.ttl
    logger.debug("point-in-time match on {} for {} entity rows", engine, left.height)
    if engine == "duckdb":
        from tauro_workbench.engines.pit_duckdb import duckdb_matches

        return duckdb_matches(
            left, feature_side(features, spec, feature_schema, lower=lower, upper=upper_t, sort=False), spec
        )
    right = feature_side(features, spec, feature_schema, lower=lower, upper=upper_t)
    left = left.with_columns(pl.col(k).cast(right.schema[k], strict=False) for k in spec.entity_keys)
    matched = left.join_asof(
        right.select(*spec.entity_keys, TIME, LOC, pl.col(TIME).alias(WON)),
        on=TIME,
        by=list(spec.entity_keys),
        strategy="backward",
        tolerance=spec.ttl,
        check_sortedness=False,
    )
    return matched.select(ROW, LOC, WON).drop_nulls(LOC)


def fetch_winners(
    features: pl.LazyFrame, matches: pl.DataFrame, spec: PointInTimeSpec, *, height: int
) -> pl.DataFrame:
    """Return the winning rows' feature columns (named ``spec.outputs``) placed at their entity rows.

    The event time is read again and compared with the match's: a feature frame that yields its
    rows in a different order on each read (e.g. an unordered parallel query) is detected.

    Args:
        features: The feature frame (read once more, streaming, for the winning rows only).
        matches: (``ROW``, ``LOC``, ``WON``): entity row position -> feature row position, and
            that row's UTC event time as seen by the match.
        spec: The join spec.
        height: Number of entity rows; rows without a match get nulls.
    """
    renames = dict(zip(spec.feature_columns, spec.outputs, strict=True))
    locs = matches[LOC].to_numpy()
    # Distinct positions and each match's rank among them by marking (linear; np.unique hashes).
    marked = np.zeros(int(locs.max()) + 1 if locs.size else 0, dtype=np.bool_)
    marked[locs] = True
    wanted = pl.Series(LOC, np.flatnonzero(marked), dtype=pl.get_index_type())
    inverse = np.cumsum(marked, dtype=np.int64)[locs] - 1
    del marked
    event = utc_datetime_expr(spec.event_time, features.collect_schema()[spec.event_time]).alias(WON)
    fetched = (
        features.select(*spec.feature_columns, event)
        .with_row_index(LOC)
        .filter(pl.col(LOC).is_in(wanted.implode()))
        .collect(engine="streaming")
    )
    if not fetched[LOC].is_sorted():
        fetched = fetched.sort(LOC)
    if fetched.height == 0:
        return fetched.drop(LOC, WON).clear(height).rename(renames)
    # fetched holds the wanted rows in position order, so a match's row is its LOC's rank.
    position = pl.Series(inverse)
    if fetched.height != wanted.len() or not (fetched[WON].gather(position) == matches[WON]).all():
        raise PointInTimeError(
            "the feature frame returned its rows in a different order when read again",
            hint="Pass a frame with a stable row order (a scan, or a collected frame's .lazy()).",
        )
    index = pl.repeat(None, height, dtype=pl.get_index_type(), eager=True)
    if matches.height:
        index = index.scatter(matches[ROW], position)
    return fetched.drop(LOC, WON).select(pl.all().gather(index)).rename(renames)


def winner_index(matches: pl.DataFrame, *, height: int) -> pl.Series:
    """Return, per entity row, its matched feature row's position (``matches``' ``LOC``) or null."""
    index = pl.repeat(None, height, dtype=pl.get_index_type(), eager=True)
    if matches.height:
        index = index.scatter(matches[ROW], matches[LOC])
    return index


def gather_winners(held: pl.DataFrame, index: pl.Series, spec: PointInTimeSpec) -> pl.DataFrame:
    """Like :func:`fetch_winners` for a feature frame already in memory: one gather by position.

    ``index`` holds each entity row's winning position in ``held`` (null: no match).
    """
    renames = dict(zip(spec.feature_columns, spec.outputs, strict=True))
    return held.select(pl.col(spec.feature_columns).gather(index)).rename(renames)


def latest_per_entity(
    features: pl.LazyFrame,
    spec: PointInTimeSpec,
    *,
    as_of: datetime | None = None,
    entities: pl.LazyFrame | pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Return the latest feature values per entity, optionally as of an instant.

    With ``as_of`` every entity is looked up at that instant with the point-in-time rule (ttl
    included); without it the latest row ever written wins and the ttl is not applied (pass
    ``as_of=datetime.now(timezone.utc)`` for "latest still within ttl"). ``spec.entity_time`` is
    not used.

    Args:
        features: The feature frame.
        spec: Keys, event time, features, ttl and tie-breakers.
        as_of: The instant (naive = UTC), or ``None`` for no upper bound.
        entities: Key columns of the entities wanted: one output row per row, in order, nulls
            for unknown entities; the keys also filter the scan. ``None`` returns every entity
            with a candidate row, sorted by key.

    Returns:
        The entity keys, ``spec.event_time`` of the winning row, then ``spec.outputs``.

    Raises:
        PointInTimeError: For missing columns or unjoinable key types.

    Example:
        >>> latest_per_entity(scan, spec, entities=pl.DataFrame({"user_id": [1, 2]})).collect()  # doctest: +SKIP
    """
    feature_schema = dict(features.collect_schema())
    keys = list(spec.entity_keys)
    instant = None if as_of is None else to_utc(as_of)
    want = None if entities is None else entities.lazy()
    key_source = feature_schema if want is None else dict(want.collect_schema())
    key_schema = {k: key_source[k] for k in keys if k in key_source}
    # The entity time is not used here: a placeholder lets the shared checks run.
    check_columns(spec, {**key_schema, spec.entity_time: pl.Date()}, feature_schema)
    time_dtype = feature_schema[spec.event_time]
    out_schema: dict[str, pl.DataType] = dict(key_schema)
    out_schema[spec.event_time] = time_dtype
    out_schema.update(zip(spec.outputs, (feature_schema[c] for c in spec.feature_columns), strict=True))

    def run() -> pl.DataFrame:
        scan = features
        wanted = None if want is None else want.select(keys).collect()
        if wanted is not None:
            # Per-key membership is a superset of the composite match; it exists to be pushed
            # into the scan. The exact match is the join below.
            for key in keys:
                values = wanted[key].cast(feature_schema[key], strict=False).drop_nulls().unique()
                scan = scan.filter(pl.col(key).is_in(values.implode()))
        lower = None if instant is None or spec.ttl is None else instant - spec.ttl
        narrow = feature_side(scan, spec, feature_schema, lower=lower, upper=instant)
        winners = narrow.select(*keys, LOC, pl.col(TIME).alias(WON)).unique(
            subset=keys, keep="last", maintain_order=False
        )
        matches = winners.sort(keys, nulls_last=True).with_row_index(ROW)
        table = matches.select(pl.col(k).cast(feature_schema[k]) for k in keys).hstack(
            fetch_winners(scan, matches, _with_time(spec), height=matches.height).get_columns()
        )
        if wanted is None:
            return table
        cast = [pl.col(k).cast(feature_schema[k], strict=False).alias(f"{_RESERVED}{k}") for k in keys]
        probe = wanted.with_columns(cast)
        joined = probe.join(
            table.rename({k: f"{_RESERVED}{k}" for k in keys}),
            on=[f"{_RESERVED}{k}" for k in keys],
            how="left",
            maintain_order="left",
        )
        return joined.select(list(out_schema))

    return pl.defer(run, schema=out_schema)


def _with_time(spec: PointInTimeSpec) -> PointInTimeSpec:
    """Return ``spec`` also fetching the event time (under its own name)."""
    return PointInTimeSpec(
        entity_keys=spec.entity_keys,
        entity_time=spec.entity_time,
        event_time=spec.event_time,
        feature_columns=(spec.event_time, *spec.feature_columns),
        output_names=(spec.event_time, *spec.outputs),
        ttl=spec.ttl,
        tie_breakers=spec.tie_breakers,
    )
