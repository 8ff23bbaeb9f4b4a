"""How the columns a virtual query returns are typed as their group declares them.

Checked when a group is defined (against the query's result schema) and applied at every read.
A result column fits its declared type when:

- the types are equal, or the cast is lossless (:func:`~tauro_workbench.dtypes.can_cast_losslessly`,
  e.g. Int32 to BIGINT, any datetime to TIMESTAMP);
- or it narrows and every value is checked at read time: an integer or an integral decimal to
  INT or BIGINT (DuckDB's ``SUM`` of integers is HUGEINT, which Polars sees as
  ``Decimal(38,0)``); any integer, float or decimal to ``DECIMAL(p,s)``; a decimal or an
  integer to DOUBLE or FLOAT when each value survives the round trip (a ``DECIMAL(38,2)`` sum
  of money is exact as DOUBLE up to 15 significant digits; Spark's ``AVG`` of decimals is a
  decimal); DOUBLE to FLOAT when nothing overflows (rounding is what FLOAT means); a datetime
  to DATE when every value is at midnight UTC. These are the narrowing rules of
  :mod:`tauro_workbench.validation`, plus decimals to integers and floats.

A read whose values do not fit raises :class:`VirtualizationQueryError` naming the column, the
count and a few values. A column whose type no longer fits at all means that a source changed
since the definition (:class:`~tauro_workbench.exceptions.SourceSchemaDriftError`, raised by the
store with the source's old and new column types).
"""

from __future__ import annotations

from datetime import time
from typing import Literal

import polars as pl

from tauro_workbench.dtypes import DataType, TypeSpec, can_cast_losslessly
from tauro_workbench.exceptions import VirtualizationQueryError
from tauro_workbench.frames import utc_datetime_expr
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["Fit", "TypedResult", "result_fit", "result_spec", "type_result"]

Fit = Literal["exact", "lossless", "checked"]
_SAMPLE = 5
_FLOATS = (DataType.FLOAT, DataType.DOUBLE)


def result_spec(schema: FeatureGroupSchema, column: str, actual: pl.DataType) -> TypeSpec:
    """Return the type a result column must fit (undeclared keys: BIGINT for integers, else STRING)."""
    spec = schema.column_spec(column)
    if spec is not None:
        return spec
    return TypeSpec.of("BIGINT") if actual.is_integer() else TypeSpec.of("STRING")


def result_fit(actual: pl.DataType, spec: TypeSpec) -> Fit | None:
    """Return how a result column of type ``actual`` fits ``spec``, or None when it cannot.

    Example:
        >>> result_fit(pl.Decimal(38, 0), TypeSpec.of("BIGINT"))
        'checked'
    """
    if spec.base is not DataType.TIMESTAMP and actual == spec.to_polars():
        return "exact"
    if can_cast_losslessly(actual, spec):
        return "lossless"
    base = spec.base
    integral = actual.is_integer() or (isinstance(actual, pl.Decimal) and (actual.scale or 0) == 0)
    if base in (DataType.INT, DataType.BIGINT):
        return "checked" if integral else None
    if base is DataType.DECIMAL:
        return "checked" if actual.is_numeric() else None
    if base in _FLOATS and (actual.is_integer() or isinstance(actual, pl.Decimal)):
        return "checked"
    if base is DataType.FLOAT and actual == pl.Float64:
        return "checked"
    if base is DataType.DATE and isinstance(actual, pl.Datetime):
        return "checked"
    return None


class TypedResult:
    """A result cast to its group's types, and the columns whose type no longer fits.

    Attributes:
        frame: The rows, the fitting columns cast to their declared types.
        misfits: Column -> its actual type, for columns that fit no declared type (a source
            changed since the definition).
    """

    def __init__(self, frame: pl.DataFrame, misfits: dict[str, pl.DataType]) -> None:
        self.frame = frame
        self.misfits = misfits


def _checked_cast(column: str, actual: pl.DataType, target: pl.DataType) -> tuple[pl.Expr, pl.Expr, str]:
    """Return (cast, lossy-row predicate, what lossy means) for a narrowing cast."""
    original = pl.col(column)
    if isinstance(actual, pl.Datetime) and target == pl.Date:
        utc = utc_datetime_expr(column, actual)
        return utc.dt.date(), original.is_not_null() & (utc.dt.time() != time(0)), "are not at midnight UTC"
    cast = original.cast(target, strict=False)
    if actual == pl.Float64 and target == pl.Float32:
        return cast, original.is_finite() & cast.is_infinite(), "overflow FLOAT (float32)"
    back = cast.cast(actual, strict=False)
    lossy = original.is_not_null() & (cast.is_null() | back.is_null() | (back != original))
    return cast, lossy, "do not fit exactly"


def type_result(schema: FeatureGroupSchema, frame: pl.DataFrame, *, query: str | None = None) -> TypedResult:
    """Cast a virtual query's result to the group's declared types, checking narrowed values.

    Time columns become UTC microsecond datetimes; undeclared entity keys keep their type.

    Raises:
        VirtualizationQueryError: If a narrowed column holds values that do not fit (the
            column, the count and a few values are named).

    Example:
        >>> type_result(schema, pl.DataFrame({"user_id": [1], "clicks": [3]})).frame  # doctest: +SKIP
    """
    casts: list[pl.Expr] = []
    checks: dict[str, tuple[pl.Expr, str, TypeSpec]] = {}
    misfits: dict[str, pl.DataType] = {}
    for column, actual in frame.schema.items():
        spec = schema.column_spec(column) if column in schema.columns else None
        if spec is None:
            continue
        fit = result_fit(actual, spec)
        if fit is None:
            misfits[column] = actual
        elif column in schema.time_columns:
            casts.append(utc_datetime_expr(column, actual))
        elif fit == "lossless":
            casts.append(pl.col(column).cast(spec.to_polars()))
        elif fit == "checked":
            cast, lossy, what = _checked_cast(column, actual, spec.to_polars())
            casts.append(cast.alias(column))
            checks[column] = (lossy, what, spec)
    if checks:
        counts = frame.select([lossy.sum().alias(c) for c, (lossy, _, _) in checks.items()]).row(0)
        problems = []
        for (column, (lossy, what, spec)), count in zip(checks.items(), counts, strict=True):
            if count:
                sample = frame.filter(lossy).get_column(column).head(_SAMPLE).to_list()
                problems.append(
                    f"column {column!r} ({frame.schema[column]}) has {count} value(s) that {what} "
                    f"as declared {spec}, e.g. {sample}"
                )
        if problems:
            raise VirtualizationQueryError(
                f"The query of virtual group {schema.name!r} returned values that do not fit the "
                "declared types: " + "; ".join(problems) + ".",
                query=query,
                hint="Declare a wider type, or cast/round the column in the SQL.",
            )
    return TypedResult(frame.with_columns(casts) if casts else frame, misfits)
