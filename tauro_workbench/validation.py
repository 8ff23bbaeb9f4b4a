"""Validation of frames against a :class:`~tauro_workbench.schema.FeatureGroupSchema`.

All checks run in one pass and every problem is reported together, so a user fixes a frame
once, not one error at a time: missing columns, wrong types, values that do not fit a
narrower type, nulls where none are allowed, and ``metadata`` constraints.

Type rules, per column:

- a type that casts losslessly (:func:`~tauro_workbench.dtypes.can_cast_losslessly`) is cast;
- a narrower numeric type is accepted when every actual value survives the cast exactly
  (e.g. Int64 values to INT, integers to DECIMAL(p,s), Float64 to DECIMAL(p,s) or to FLOAT
  when nothing overflows float32, DECIMAL to a smaller DECIMAL), and so is a datetime whose
  values all fall on midnight for a DATE column (pandas turns dates into datetimes);
- anything else (e.g. strings to numbers, floats to integers) is reported; cast it explicitly.

Timestamps (event time, created time and TIMESTAMP features) must lie in
[:data:`TIMESTAMP_MIN`, :data:`TIMESTAMP_MAX`], what every layer holds: nanosecond engines
(pandas, Arrow ``timestamp[ns]``) stop at 1677-09-21 and 2262-04-11, Python and Spark at the
years 1 and 9999, and the online codec's order prefix needs non-negative 18-digit times.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from tauro_workbench.dtypes import DataType, TypeSpec, can_cast_losslessly
from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.frames import FrameLike, to_lazyframe, to_utc, utc_datetime_expr

if TYPE_CHECKING:
    from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["TIMESTAMP_MAX", "TIMESTAMP_MIN", "FrameLike", "entity_key_dtype", "validate_frame"]

_SAMPLE = 5
#: The earliest and latest timestamps accepted: the nanosecond range, to the microsecond.
TIMESTAMP_MIN = datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=UTC)
TIMESTAMP_MAX = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)


def entity_key_dtype(declared: TypeSpec | None, actual: pl.DataType) -> pl.DataType | None:
    """Return the storage type of an entity key column, or None if ``actual`` is not allowed.

    Declared keys follow the lossless-cast rules. Undeclared keys accept integers (stored as
    Int64), strings (String) and dates (Date); an all-null column is stored as Int64 (and
    then reported for its nulls).
    """
    if declared is not None:
        return declared.to_polars() if can_cast_losslessly(actual, declared) else None
    if actual == pl.Null:
        return pl.Int64()
    if actual.is_integer():
        return pl.Int64() if actual != pl.UInt64 else None
    if actual in (pl.String, pl.Categorical) or isinstance(actual, pl.Enum | pl.Categorical):
        return pl.String()
    if actual == pl.Date:
        return pl.Date()
    return None


def validate_frame(
    schema: FeatureGroupSchema,
    frame: FrameLike,
    *,
    extra_columns: Literal["drop", "keep", "error"] = "drop",
) -> pl.DataFrame:
    """Validate ``frame`` against ``schema`` and return it cast to the schema's types.

    See :meth:`FeatureGroupSchema.validate`.

    Raises:
        SchemaValidationError: Listing every problem found, each with its column, the count
            of offending rows and a few offending values.
    """
    lazy = to_lazyframe(frame)
    actual = lazy.collect_schema()
    problems: list[str] = []

    missing = [c for c in schema.columns if c not in actual]
    if missing:
        problems.append(f"missing columns {missing} (present: {list(actual)})")
    extras = [c for c in actual if c not in schema.columns]
    if extras and extra_columns == "error":
        problems.append(f"unexpected columns {extras}; the schema has {schema.columns}")

    casts: dict[str, pl.Expr] = {}
    narrowed: dict[str, pl.DataType] = {}
    for column in schema.columns:
        if column not in actual:
            continue
        plan = _plan_column(schema, column, actual[column])
        if isinstance(plan, str):
            problems.append(plan)
        elif isinstance(plan, pl.Expr):
            casts[column] = plan
        else:
            narrowed[column] = plan

    typed = set(casts) | set(narrowed)
    kept = [c for c in actual if c in typed] + (extras if extra_columns == "keep" else [])
    data = lazy.select(kept).with_columns(casts.values()).collect()
    narrowing = _narrowing_problems(schema, data, narrowed)
    problems += narrowing.values()
    problems += _value_problems(schema, data, typed)
    problems += _time_range_problems(schema, data, typed)
    if problems:
        raise SchemaValidationError(problems, group=schema.name)
    data = data.with_columns(_narrow_expr(c, data.schema[c], t) for c, t in narrowed.items())
    order = [*schema.columns, *(extras if extra_columns == "keep" else [])]
    return data.select(order)


def _role(schema: FeatureGroupSchema, column: str) -> str:
    if column in schema.entity_keys:
        return "entity key"
    if column == schema.timestamp_key:
        return "timestamp key"
    if column == schema.created_timestamp_key:
        return "created timestamp key"
    return "feature"


def _plan_column(schema: FeatureGroupSchema, column: str, dtype: pl.DataType) -> pl.Expr | pl.DataType | str:
    """Return a cast expression, a target type to narrow to after a value check, or a problem."""
    declared = schema.column_spec(column)
    role = _role(schema, column)
    if declared is None:  # an undeclared entity key
        target = entity_key_dtype(None, dtype)
        if target is None:
            return (
                f"entity key {column!r} has type {dtype}, expected an integer (up to Int64/UInt32), "
                "string or date type; declare it in entity_key_types or cast it"
            )
        return pl.col(column).cast(target)
    if declared.base is DataType.TIMESTAMP and can_cast_losslessly(dtype, declared):
        return utc_datetime_expr(column, dtype)
    if can_cast_losslessly(dtype, declared):
        return pl.col(column).cast(declared.to_polars())
    if _value_castable(dtype, declared):
        return declared.to_polars()
    return (
        f"{role} {column!r} has type {dtype}, expected {declared} ({declared.to_polars()}); "
        "cast it explicitly if the conversion is intended"
    )


def _value_castable(source: pl.DataType, target: TypeSpec) -> bool:
    """Whether ``source`` may narrow to ``target`` once every value is checked to fit."""
    base = target.base
    if source.is_integer():
        return base in (DataType.INT, DataType.BIGINT, DataType.FLOAT, DataType.DOUBLE, DataType.DECIMAL)
    if source in (pl.Float32, pl.Float64):
        return base is DataType.DECIMAL or (source == pl.Float64 and base is DataType.FLOAT)
    if isinstance(source, pl.Decimal):
        return base is DataType.DECIMAL
    return isinstance(source, pl.Datetime) and base is DataType.DATE


def _narrow_expr(column: str, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    if isinstance(source, pl.Datetime) and target == pl.Date:
        return pl.col(column).dt.date()
    return pl.col(column).cast(target, strict=False)


def _narrowing_problems(
    schema: FeatureGroupSchema, data: pl.DataFrame, narrowed: dict[str, pl.DataType]
) -> dict[str, str]:
    """Return column -> problem for the narrowed columns whose values do not fit."""
    problems: dict[str, str] = {}
    for column, target in narrowed.items():
        source = data.schema[column]
        original = pl.col(column)
        cast = _narrow_expr(column, source, target)
        if isinstance(source, pl.Datetime):
            lossy = original.is_not_null() & (original.dt.time() != pl.time(0))
            what = "are not at midnight, so they are not dates"
        elif source == pl.Float64 and target == pl.Float32:
            # rounding to float32 is what FLOAT means; overflow is not
            lossy = original.is_finite() & cast.is_infinite()
            what = "overflow FLOAT (float32)"
        else:
            back = cast.cast(source, strict=False)
            lossy = original.is_not_null() & (cast.is_null() | (back != original) | back.is_null())
            what = f"do not fit {schema.column_spec(column)} exactly"
        bad = data.filter(lossy).get_column(column)
        if bad.len():
            problems[column] = (
                f"{_role(schema, column)} {column!r} ({source}) has {bad.len()} value(s) that {what}, "
                f"e.g. {bad.head(_SAMPLE).to_list()}"
            )
    return problems


def _value_problems(schema: FeatureGroupSchema, data: pl.DataFrame, columns: set[str]) -> list[str]:
    """Null and metadata-constraint checks, computed in one aggregate pass where possible."""
    required = [c for c in schema.entity_keys if c in columns]
    if schema.timestamp_key is not None and schema.timestamp_key in columns:
        required.append(schema.timestamp_key)
    required += [f.name for f in schema.features if not f.nullable and f.name in columns]

    checks: list[tuple[str, str, pl.Expr | None]] = []  # (kind, column, offending-rows expr)
    broken: list[str] = []
    for column in required:
        checks.append(("null", column, pl.col(column).is_null()))
    for feature in schema.features:
        if feature.name not in columns:
            continue
        dtype = data.schema[feature.name]
        for kind in ("min", "max", "allowed_values"):
            bound = feature.metadata.get(kind)
            if bound is None:
                continue
            try:
                checks.append((kind, feature.name, _constraint(kind, feature.name, dtype, bound)))
            except (pl.exceptions.PolarsError, TypeError, ValueError, SchemaValidationError) as err:
                broken.append(
                    f"feature {feature.name!r}: metadata {kind} {bound!r} cannot be checked "
                    f"against {dtype} values ({err})"
                )
    if not checks:
        return broken
    counts = _counts(data, checks, broken)
    problems: list[str] = []
    for (kind, column, expr), count in zip(checks, counts, strict=True):
        if not count or expr is None:
            continue
        if kind == "null":
            rows = data.select(pl.arg_where(expr).head(_SAMPLE)).to_series().to_list()
            role = _role(schema, column).replace("feature", "non-nullable feature")
            problems.append(f"{role} {column!r} has {count} null value(s), e.g. at rows {rows}")
            continue
        sample = data.filter(expr).get_column(column).head(_SAMPLE).to_list()
        bound = schema.get_feature(column).metadata[kind]
        if kind == "min":
            problems.append(f"feature {column!r} has {count} value(s) below min {bound!r}, e.g. {sample}")
        elif kind == "max":
            problems.append(f"feature {column!r} has {count} value(s) above max {bound!r}, e.g. {sample}")
        else:
            problems.append(
                f"feature {column!r} has {count} value(s) outside allowed_values {list(bound)!r}, e.g. {sample}"
            )
    return problems + broken


def _time_range_problems(schema: FeatureGroupSchema, data: pl.DataFrame, columns: set[str]) -> list[str]:
    """Report timestamps outside [TIMESTAMP_MIN, TIMESTAMP_MAX], before anything is written."""
    timed = [
        c
        for c in schema.columns
        if c in columns
        and isinstance(data.schema[c], pl.Datetime)
        and (c in schema.time_columns or schema.column_spec(c).base is DataType.TIMESTAMP)  # type: ignore[union-attr]
    ]
    if not timed:
        return []
    outside = {
        c: (pl.col(c) < pl.lit(TIMESTAMP_MIN, dtype=data.schema[c]))
        | (pl.col(c) > pl.lit(TIMESTAMP_MAX, dtype=data.schema[c]))
        for c in timed
    }
    counts = data.select(e.sum().alias(c) for c, e in outside.items()).row(0, named=True)
    problems = []
    for column, count in counts.items():
        if not count:
            continue
        # as text: Python's datetime cannot hold every such value (e.g. the year 10000)
        sample = data.filter(outside[column]).get_column(column).head(_SAMPLE).cast(pl.String).to_list()
        problems.append(
            f"{_role(schema, column)} {column!r} has {count} value(s) outside the supported range "
            f"[{TIMESTAMP_MIN.isoformat()}, {TIMESTAMP_MAX.isoformat()}], e.g. {sample}; "
            "clip or drop them (nanosecond engines such as pandas cannot hold them)"
        )
    return problems


def _counts(
    data: pl.DataFrame, checks: list[tuple[str, str, pl.Expr | None]], broken: list[str]
) -> list[int]:
    exprs = [expr for _, _, expr in checks if expr is not None]
    try:
        row = data.select(e.sum().alias(str(i)) for i, e in enumerate(exprs)).row(0)
        values = iter(int(v or 0) for v in row)
        return [next(values) if expr is not None else 0 for _, _, expr in checks]
    except pl.exceptions.PolarsError:
        pass
    # one constraint cannot be evaluated on this data: find it, report it, keep the others
    counts = []
    for kind, column, expr in checks:
        try:
            counts.append(0 if expr is None else int(data.select(expr.sum()).item() or 0))
        except pl.exceptions.PolarsError as err:
            broken.append(f"feature {column!r}: metadata {kind} cannot be checked ({err})")
            counts.append(0)
    return counts


def _constraint(kind: str, column: str, dtype: pl.DataType, bound: Any) -> pl.Expr:
    """Return the expression selecting the rows that break one metadata constraint."""
    col = pl.col(column)
    if kind == "allowed_values":
        if isinstance(bound, (str, bytes)) or not isinstance(bound, Sequence):
            raise TypeError("allowed_values must be a list")
        values = [_literal_value(v, dtype) for v in bound]
        allowed = pl.Series(
            values, dtype=dtype if not isinstance(dtype, pl.Decimal) else pl.Float64, strict=False
        )
        target = col.cast(pl.Float64) if isinstance(dtype, pl.Decimal) else col
        return col.is_not_null() & ~target.is_in(allowed.implode())
    value = _literal_value(bound, dtype)
    if isinstance(dtype, pl.Decimal):  # Polars cannot compare a decimal column with a float literal
        col = col.cast(pl.Float64)
    lit = pl.lit(value, dtype=dtype) if isinstance(dtype, pl.Datetime) else pl.lit(value)
    return col < lit if kind == "min" else col > lit


def _literal_value(value: Any, dtype: pl.DataType) -> Any:
    """Convert a constraint bound to a value comparable with a column of ``dtype``."""
    if isinstance(dtype, pl.Datetime):
        return to_utc(value)
    if dtype == pl.Date and isinstance(value, str):
        return date.fromisoformat(value)
    if dtype == pl.Date and isinstance(value, datetime):
        return value.date()
    if isinstance(dtype, pl.Decimal) and isinstance(value, (int, float, Decimal)):
        return float(value)
    return value
