"""The point-in-time match on DuckDB: one ``ASOF JOIN`` over the narrow frames.

DuckDB's ``ASOF JOIN`` picks an arbitrary row among equal event times, so the inequality runs on
a struct ``(event time, [tie-breaker is not null, tie-breaker]..., row position)`` compared
lexicographically: the greatest struct not above ``(t, [true, max]..., max)`` is exactly the
winner of the point-in-time rule. The ttl is checked on the winner afterwards (the winner is the
latest candidate, so if it is too old every candidate is). The ttl is a bound parameter.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import polars as pl
from loguru import logger

from tauro_workbench.engines.pit import LOC, ROW, TIME, WON, PointInTimeSpec
from tauro_workbench.exceptions import PointInTimeError

__all__ = ["duckdb_matches"]

_INT64_MAX = 2**63 - 1
_EPOCH = "__tauro_epoch_us"
_SORT = '"__tauro_sort"'


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ordered_int64(column: str, dtype: pl.DataType) -> pl.Expr:
    """Return ``column`` as an Int64 in the same order (UInt64: the sign bit flipped)."""
    if dtype == pl.UInt64:  # values >= 2**63 do not fit an Int64; flipping the top bit keeps order
        return pl.col(column).reinterpret(signed=True).xor(pl.lit(-(2**63), dtype=pl.Int64))
    return pl.col(column).to_physical().cast(pl.Int64)


def duckdb_matches(left: pl.DataFrame, right: pl.DataFrame, spec: PointInTimeSpec) -> pl.DataFrame:
    """Return (``ROW``, ``LOC``, ``WON``) winners for the narrow entity and feature sides.

    Args:
        left: Entity side: ``ROW``, the keys (feature dtypes) and ``TIME`` (UTC), no nulls.
        right: Feature side: the keys, ``TIME``, the tie-breakers and ``LOC``, no null key/time.
        spec: The join spec (keys, tie-breakers, ttl).

    Raises:
        PointInTimeError: If DuckDB fails to run the join.
    """
    tie = [f"__tauro_tb{i}" for i in range(len(spec.tie_breakers))]
    # Integers keep struct comparison exact and cheap: times as epoch microseconds and
    # tie-breakers as their physical Int64.
    entity_side = left.select(ROW, *spec.entity_keys, pl.col(TIME).dt.epoch("us").alias(_EPOCH))
    feature_side = right.select(
        *spec.entity_keys,
        pl.col(TIME).dt.epoch("us").alias(_EPOCH),
        *[_ordered_int64(c, right.schema[c]).alias(t) for c, t in zip(spec.tie_breakers, tie, strict=True)],
        pl.col(LOC).cast(pl.Int64),
    )
    e_fields = [f"{_quote('t')} := e.{_quote(_EPOCH)}"]
    f_fields = [f"{_quote('t')} := f.{_quote(_EPOCH)}"]
    for i, column in enumerate(tie):
        e_fields += [f"{_quote(f'n{i}')} := TRUE", f"{_quote(f'b{i}')} := {_INT64_MAX}::BIGINT"]
        f_fields += [
            f"{_quote(f'n{i}')} := f.{_quote(column)} IS NOT NULL",
            f"{_quote(f'b{i}')} := COALESCE(f.{_quote(column)}, 0::BIGINT)",
        ]
    e_fields.append(f"{_quote('l')} := {_INT64_MAX}::BIGINT")
    f_fields.append(f"{_quote('l')} := f.{_quote(LOC)}")
    on_keys = " AND ".join(f"e.{_quote(k)} = f.{_quote(k)}" for k in spec.entity_keys)
    sql = (
        f"SELECT e.{_quote(ROW)}, f.{_quote(LOC)}, e.{_quote(_EPOCH)} AS te, f.{_quote(_EPOCH)} AS tf "
        f"FROM (SELECT *, struct_pack({', '.join(e_fields)}) AS {_SORT} FROM entity_side AS e) e "
        f"ASOF JOIN (SELECT *, struct_pack({', '.join(f_fields)}) AS {_SORT} FROM feature_side AS f) f "
        f"ON {on_keys} AND e.{_SORT} >= f.{_SORT}"
    )
    params: dict[str, int] = {}
    if spec.ttl is not None:
        sql = f"SELECT * FROM ({sql}) WHERE tf >= te - $ttl"
        params["ttl"] = spec.ttl // timedelta(microseconds=1)
    logger.debug("DuckDB point-in-time SQL: {}", sql)
    con = duckdb.connect()
    try:
        con.register("entity_side", entity_side)
        con.register("feature_side", feature_side)
        result = con.sql(sql, params=params).pl()
    except duckdb.Error as err:
        raise PointInTimeError(f"DuckDB failed to run the point-in-time join: {err}") from err
    finally:
        con.close()
    return result.select(
        pl.col(ROW).cast(pl.get_index_type()),
        pl.col(LOC).cast(pl.get_index_type()),
        pl.from_epoch("tf", time_unit="us").dt.replace_time_zone("UTC").alias(WON),
    )
