"""The packed point-in-time match on NumPy arrays, for one integer entity key.

Same semantics as :func:`tauro_workbench.engines.pit.point_in_time_join` (its docstring has
them), for one integer key whose range and the time span fit in 63 bits together. Each
joinable feature row (no null key or event time, event time inside the union of the entity
rows' windows) becomes ``(key - min key) << bits | (event time - base)``: sorting those values
orders the rows by key, then event time, and an entity row's winner is the last value not above
its own (a binary search) when the key is the same and the event time within the ttl.

- :func:`in_memory_winners`, for feature frames already held in memory (up to
  :data:`~tauro_workbench.engines.pit.IN_MEMORY_ROWS` rows): every column is taken as a NumPy
  array and each step is one NumPy kernel, since a lazy Polars query's fixed cost (~0.5-1 ms)
  exceeds the work itself at these sizes. One arg-sort; each run of equal values gets its tie
  winner moved to the run's end.
- :func:`packed_join`, for scans: the values alone are sorted (no positions), and the winners'
  rows are fetched by value in a second streaming read that also settles their ties.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl

from tauro_workbench.exceptions import PointInTimeError
from tauro_workbench.frames import utc_datetime_expr

if TYPE_CHECKING:
    from tauro_workbench.engines.pit import PointInTimeSpec

__all__ = ["in_memory_winners", "packed_join"]

_PACKED = "__tauro_packed"
_LOC = "__tauro_loc"
_KEY = "__tauro_key"
_TIME = "__tauro_time"
_POS = "__tauro_pos"

_PACKABLE_KEYS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


def in_memory_winners(
    frame: pl.DataFrame,
    held: pl.DataFrame,
    *,
    key: str,
    entity_time: str,
    event_time: str,
    tie_breakers: tuple[str, ...],
    ttl: timedelta | None,
    feature_schema: Mapping[str, pl.DataType],
) -> pl.Series | None:
    """Return, per entity row, the position in ``held`` of its winning row (null: no match).

    None when the match cannot be packed (not one integer key, or the key range and the time
    span together exceed 63 bits); the caller falls back to the as-of join then.

    Args:
        frame: The entity rows, with ``key`` and ``entity_time``.
        held: The feature rows, with ``key``, ``event_time`` and the ``tie_breakers``.
        key: The one entity key.
        entity_time: The entity frame's time column.
        event_time: The feature frame's event-time column.
        tie_breakers: Columns ordering rows of equal key and event time (greatest wins, null
            lowest); the later row wins when they are equal too.
        ttl: Lookback window (closed), or ``None`` for no limit.
        feature_schema: The feature frame's schema (the key's dtype decides packability).
    """
    if feature_schema[key] not in _PACKABLE_KEYS:
        return None
    entity_key, entity_at, entity_ok = _key_and_time(frame, key, entity_time)
    if not entity_ok.any():
        return pl.repeat(None, frame.height, dtype=pl.get_index_type(), eager=True)
    upper = int(entity_at[entity_ok].max())
    first_entity = int(entity_at[entity_ok].min())
    feature_key, feature_at, feature_ok = _key_and_time(held, key, event_time)
    feature_ok &= feature_at <= upper
    if ttl is not None:
        feature_ok &= feature_at >= first_entity - ttl // timedelta(microseconds=1)
    if not feature_ok.any():
        return pl.repeat(None, frame.height, dtype=pl.get_index_type(), eager=True)
    # Positions of the joinable rows (None: every row), so a filter runs only when it drops rows.
    joinable = None if feature_ok.all() else np.flatnonzero(feature_ok)
    if joinable is not None:
        feature_key, feature_at = feature_key[joinable], feature_at[joinable]
    low_key, high_key = int(feature_key.min()), int(feature_key.max())
    base = min(int(feature_at.min()), first_entity)
    bits = (upper - base).bit_length()
    if bits + (high_key - low_key).bit_length() > 63:
        return None
    packed = feature_key - low_key
    packed <<= bits
    packed += feature_at - base
    locs = np.argsort(packed)
    # A gather of values already in cache beats a second sort at these sizes.
    packed = packed[locs]
    if joinable is not None:
        locs = joinable[locs]
    _place_tie_winners(packed, locs, held, tie_breakers)
    # Keys outside the feature keys' range cannot match (and must not overflow the packing).
    rows = np.flatnonzero(entity_ok & (entity_key >= low_key) & (entity_key <= high_key))
    probe_key, probe_at = entity_key[rows] - low_key, entity_at[rows] - base
    queries = probe_key << bits
    queries += probe_at
    # Searching in sorted order touches memory in order: several times faster than random probes.
    query_order = np.argsort(queries)
    position = np.empty_like(queries)
    position[query_order] = np.searchsorted(packed, queries[query_order], side="right") - 1
    found = packed[np.maximum(position, 0)]
    ok = (position >= 0) & ((found >> bits) == probe_key)
    if ttl is not None:  # as a difference: ``probe_at - ttl`` may not fit an Int64
        ok &= probe_at - (found & ((1 << bits) - 1)) <= ttl // timedelta(microseconds=1)
    index = np.zeros(frame.height, dtype=np.uint32 if pl.get_index_type() == pl.UInt32 else np.uint64)
    valid = np.zeros(frame.height, dtype=np.bool_)
    won = rows[ok]
    index[won] = locs[position[ok]]
    valid[won] = True
    return pl.select(pl.when(pl.Series(valid)).then(pl.Series(index))).to_series()


def _pack(keys: pl.Series, times: pl.Series, *, low_key: int, base: int, bits: int) -> Ints:
    """Return ``(keys - low_key) << bits | (times - base)`` (no nulls) as a new Int64 array.

    Built in place, chunk by chunk (a streaming read yields hundreds of chunks): no copy of
    either column and no temporary as large as the result.
    """
    packed = np.empty(keys.len(), dtype=np.int64)
    for offset, values in _chunks(keys):
        packed[offset : offset + values.size] = values
    packed -= low_key
    packed <<= bits
    for offset, values in _chunks(times):
        packed[offset : offset + values.size] += values
    packed -= base
    return packed


def _chunks(column: pl.Series) -> Iterator[tuple[int, Ints]]:
    """Yield each chunk of ``column`` as a NumPy array (no copy) with its offset."""
    offset = 0
    for chunk in column.get_chunks():
        values = chunk.to_numpy()
        yield offset, values
        offset += values.size


def _key_and_time(frame: pl.DataFrame, key: str, time: str) -> tuple[Ints, Ints, Mask]:
    """Return ``key`` as Int64, ``time`` as UTC epoch microseconds and where neither is null.

    A key that does not fit an Int64 becomes null (every packable feature key fits, so it
    could not match); null slots hold 0 in the arrays.
    """
    keys = frame[key].cast(pl.Int64, strict=False)
    dtype = frame.schema[time]
    if isinstance(dtype, pl.Datetime) and dtype.time_unit == "us":
        times = frame[time].to_physical()  # UTC microseconds already (naive is taken as UTC)
    else:
        times = frame.select(utc_datetime_expr(time, dtype).dt.epoch("us")).to_series()
    ok = np.ones(frame.height, dtype=np.bool_)
    for column in (keys, times):
        if column.null_count():
            ok &= column.is_not_null().to_numpy()
    return _ints(keys), _ints(times), ok


def _ints(column: pl.Series) -> Ints:
    """Return an integer column as an Int64 array, nulls as 0."""
    values = column.fill_null(0).to_numpy() if column.null_count() else column.to_numpy()
    return np.asarray(values, dtype=np.int64)


def _place_tie_winners(packed: Ints, locs: Ints, held: pl.DataFrame, tie_breakers: tuple[str, ...]) -> None:
    """Move each run of equal sorted ``packed`` values' tie winner to the run's end (in ``locs``).

    The search for an entity row lands on the last row of a run, so no row is dropped. The
    winner has the greatest tie-breakers (compared in order, null lowest), then the greatest
    position. Only the tied rows are looked at: each tie-breaker in turn keeps the rows equal
    to their run's greatest (a segmented maximum, no sort), until one row is left per run
    (later tie-breakers are then not read).
    """
    equal = packed[1:] == packed[:-1]
    if not equal.any():  # no ties is the common case, checked fast
        return
    tied = np.zeros(packed.size, dtype=np.bool_)
    tied[1:] = equal
    tied[:-1] |= equal
    where = np.flatnonzero(tied)
    values = packed[where]
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    lengths = np.diff(starts, append=where.size)
    tied_locs = locs[where]
    alive = np.ones(where.size, dtype=np.bool_)
    for name in tie_breakers:
        column = held[name].to_physical()
        if column.null_count():
            column = column.gather(tied_locs)
            alive &= _is_run_max(column.is_not_null().to_numpy(), alive, starts, lengths)
            ranks = column.fill_null(0).to_numpy()
        else:
            ranks = column.to_numpy()[tied_locs]
        alive &= _is_run_max(ranks, alive, starts, lengths)
        if np.count_nonzero(alive) == starts.size:  # every run has one row left: decided
            break
    else:
        alive &= _is_run_max(tied_locs, alive, starts, lengths)
    locs[where[starts + lengths - 1]] = tied_locs[alive]


def _is_run_max(values: npt.NDArray[np.generic], alive: Mask, starts: Ints, lengths: Ints) -> Mask:
    """Return where ``values`` equals the greatest of its run's ``alive`` values.

    The runs are consecutive: run ``i`` begins at ``starts[i]`` and holds ``lengths[i]`` rows.
    """
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    masked = np.where(alive, values, np.iinfo(values.dtype).min)  # type: ignore[type-var]
    return masked == np.repeat(np.maximum.reduceat(masked, starts), lengths)


def packed_join(
    frame: pl.DataFrame,
    features: pl.LazyFrame,
    spec: PointInTimeSpec,
    feature_schema: Mapping[str, pl.DataType],
) -> pl.DataFrame | None:
    """Return the winners' feature columns (named ``spec.outputs``), one row per entity row.

    For feature frames too large to hold: two streaming reads. The first reads only the key and
    the event time and sorts their packed values (no positions: a sort of values alone costs a
    fifth of an arg-sort); a binary search then gives each entity row the packed value of its
    winner. The second read keeps the rows holding one of those values, with their feature
    columns, and settles ties among them (tie-breakers, then the later row of this read). Rows
    are matched by value, so the two reads need not return rows in the same order.

    Returns:
        None when the match cannot be packed (not one integer key, or the key range and the
        time span together exceed 63 bits).
    """
    if len(spec.entity_keys) != 1 or feature_schema[spec.entity_keys[0]] not in _PACKABLE_KEYS:
        return None
    key = spec.entity_keys[0]
    renames = dict(zip(spec.feature_columns, spec.outputs, strict=True))
    nothing = pl.DataFrame(schema={renames[c]: feature_schema[c] for c in spec.feature_columns}).clear(
        frame.height
    )
    entity_key, entity_at, entity_ok = _key_and_time(frame, key, spec.entity_time)
    if not entity_ok.any():
        return nothing
    upper, first_entity = int(entity_at[entity_ok].max()), int(entity_at[entity_ok].min())
    ttl_us = None if spec.ttl is None else spec.ttl // timedelta(microseconds=1)
    key_expr = pl.col(key).cast(pl.Int64)
    time_expr = utc_datetime_expr(spec.event_time, feature_schema[spec.event_time]).dt.epoch("us")

    def joinable(keys: pl.Expr, times: pl.Expr) -> pl.Expr:
        keep = keys.is_not_null() & times.is_not_null() & (times <= upper)
        return keep if ttl_us is None else keep & (times >= first_entity - ttl_us)

    narrow = (
        features.select(key_expr.alias(_KEY), time_expr.alias(_TIME))
        .filter(joinable(pl.col(_KEY), pl.col(_TIME)))
        .collect(engine="streaming")  # half the time and memory of the in-memory engine here
    )
    if narrow.height == 0:
        return nothing
    bounds = narrow.select(
        pl.col(_KEY).min().alias("low"), pl.col(_KEY).max().alias("high"), pl.col(_TIME).min()
    ).row(0)
    low_key, high_key = int(bounds[0]), int(bounds[1])
    base = min(int(bounds[2]), first_entity)
    bits = (upper - base).bit_length()
    if bits + (high_key - low_key).bit_length() > 63:
        return None
    packed = _pack(narrow[_KEY], narrow[_TIME], low_key=low_key, base=base, bits=bits)
    del narrow
    packed.sort()
    tied = bool((packed[1:] == packed[:-1]).any())
    rows = np.flatnonzero(entity_ok & (entity_key >= low_key) & (entity_key <= high_key))
    probe_key, probe_at = entity_key[rows] - low_key, entity_at[rows] - base
    queries = probe_key << bits
    queries += probe_at
    # Searched in sorted order, which touches memory in order (several times faster than random
    # probes); the positions found then never decrease.
    query_order = np.argsort(queries)
    rows, probe_key, probe_at = rows[query_order], probe_key[query_order], probe_at[query_order]
    position = np.searchsorted(packed, queries[query_order], side="right") - 1
    found = packed[np.maximum(position, 0)]
    ok = (position >= 0) & ((found >> bits) == probe_key)
    if ttl_us is not None:  # as a difference: ``probe_at - ttl`` may not fit an Int64
        ok &= probe_at - (found & ((1 << bits) - 1)) <= ttl_us
    won_rows, won_at = rows[ok], position[ok]
    # A search lands on the last row of a run of equal values, so equal winners share a
    # position, and the positions come in order: each change of position is a new distinct
    # winner (linear, where np.unique would hash or sort).
    new = np.empty(won_at.size, dtype=np.bool_)
    new[:1] = True
    np.not_equal(won_at[1:], won_at[:-1], out=new[1:])
    wanted = packed[won_at[new]]
    rank = np.cumsum(new) - 1
    del packed
    if wanted.size == 0:
        return nothing
    # The same expression in Polars (a product instead of the shift), on joinable rows only.
    packed_expr = (key_expr - low_key) * (1 << bits) + (time_expr - base)
    carried = list(dict.fromkeys((*spec.feature_columns, *(spec.tie_breakers if tied else ()))))
    source = features.with_row_index(_LOC) if tied else features
    fetched = (
        source.filter(joinable(key_expr, time_expr) & packed_expr.is_in(pl.Series(wanted).implode()))
        .select(packed_expr.alias(_PACKED), *carried, *([_LOC] if tied else []))
        .collect(engine="streaming")
    )
    # The fetched rows' order by value (ties: greatest tie-breakers, then position, last), as
    # positions into ``fetched``: the feature columns are gathered once, never sorted.
    order_by = [_PACKED, *spec.tie_breakers, _LOC] if tied else [_PACKED]
    ordered = fetched.select(*order_by).with_row_index(_POS).sort(order_by, nulls_last=False)
    if tied:  # the tie winner is the last row of its value
        ordered = ordered.filter((pl.col(_PACKED) != pl.col(_PACKED).shift(-1)).fill_null(True))
    if not np.array_equal(ordered[_PACKED].to_numpy(), wanted):
        raise PointInTimeError(
            "the feature frame returned other rows when read again",
            hint="Pass a frame that yields the same rows on every read (a scan, or a collected frame's .lazy()).",
        )
    index = np.zeros(frame.height, dtype=np.uint32 if pl.get_index_type() == pl.UInt32 else np.uint64)
    valid = np.zeros(frame.height, dtype=np.bool_)
    index[won_rows] = ordered[_POS].to_numpy()[rank]
    valid[won_rows] = True
    gather = pl.select(pl.when(pl.Series(valid)).then(pl.Series(index))).to_series()
    return fetched.select(pl.col(list(spec.feature_columns)).gather(gather)).rename(renames)
