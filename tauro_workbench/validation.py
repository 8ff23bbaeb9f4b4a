"""Validation of frames against a :class:`~tauro_workbench.schema.FeatureGroupSchema`.

All checks run in one pass and every problem is reported together, so a user fixes a frame
once, not one error at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from tauro_workbench.dtypes import DataType, TypeSpec, can_cast_losslessly
from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.frames import FrameLike, to_lazyframe, utc_datetime_expr

if TYPE_CHECKING:
    from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["FrameLike", "validate_frame", "entity_key_dtype"]

_SAMPLE = 5


def entity_key_dtype(declared: TypeSpec | None, actual: pl.DataType) -> pl.DataType | None:
    """Return the storage type of an entity key column, or None if ``actual`` is not allowed.

    Declared keys follow the lossless-cast rules. Undeclared keys accept integers (stored as
    Int64), strings (String) and dates (Date).
    """
    if declared is not None:
        return declared.to_polars() if can_cast_losslessly(actual, declared) else None
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
    """
    lazy = to_lazyframe(frame)
    actual = lazy.collect_schema()
    problems: list[str] = []
    casts: list[pl.Expr] = []
    narrowed: dict[str, pl.DataType] = {}

    missing = [c for c in schema.columns if c not in actual]
    if missing:
        problems.append(f"missing columns {missing} (present: {list(actual)})")
    extras = [c for c in actual if c not in schema.columns]
    if extras and extra_columns == "error":
        problems.append(f"unexpected columns {extras}; the schema has {schema.columns}")

    for column in schema.columns:
        if column not in actual:
            continue
        dtype = actual[column]
        declared = schema.column_spec(column)
        if column in schema.entity_keys:
            target = entity_key_dtype(declared, dtype)
            if target is None:
                want = str(declared) if declared else "an integer, string or date type"
                problems.append(f"entity key {column!r} has type {dtype}, expected {want}")
                continue
            casts.append(pl.col(column).cast(target))
        elif declared is not None and declared.base is DataType.TIMESTAMP:
            if not can_cast_losslessly(dtype, declared):
                problems.append(f"column {column!r} has type {dtype}, expected a datetime (TIMESTAMP)")
                continue
            casts.append(utc_datetime_expr(column, dtype))
        else:
            assert declared is not None
            if _value_castable(dtype, declared):
                narrowed[column] = declared.to_polars()
                continue
            if not can_cast_losslessly(dtype, declared):
                problems.append(
                    f"feature {column!r} has type {dtype}, expected {declared} "
                    f"({declared.to_polars()}); cast it explicitly if the conversion is intended"
                )
                continue
            casts.append(pl.col(column).cast(declared.to_polars()))

    kept = [c for c in actual if c in schema.columns] + (extras if extra_columns == "keep" else [])
    typed_ok = {c for c in schema.columns if c in actual} - {p for p in _bad_columns(problems, schema)}
    data = lazy.select(kept).with_columns(casts).collect() if not problems or typed_ok else None
    if data is not None and narrowed:
        problems += _narrowing_problems(data, narrowed)
        if not problems:
            data = data.with_columns(pl.col(c).cast(t) for c, t in narrowed.items())
    if data is not None and not problems:
        problems += _value_problems(schema, data, typed_ok)
    if problems:
        raise SchemaValidationError(problems, group=schema.name)
    assert data is not None
    order = [c for c in schema.columns] + (extras if extra_columns == "keep" else [])
    return data.select(order)


def _value_castable(source: pl.DataType, target: TypeSpec) -> bool:
    """Integer columns may narrow when every actual value survives the cast exactly; Float64 may
    round to FLOAT when no value overflows float32."""
    if can_cast_losslessly(source, target):
        return False
    if source.is_integer():
        return target.base in (DataType.INT, DataType.BIGINT, DataType.FLOAT, DataType.DOUBLE, DataType.DECIMAL)
    return source == pl.Float64 and target.base is DataType.FLOAT


def _narrowing_problems(data: pl.DataFrame, narrowed: dict[str, pl.DataType]) -> list[str]:
    problems = []
    for column, target in narrowed.items():
        original = pl.col(column)
        cast = original.cast(target, strict=False)
        if data.schema[column] == pl.Float64:  # rounding to float32 is what FLOAT means; overflow is not
            lossy = original.is_finite() & cast.is_infinite()
        else:
            lossy = original.is_not_null() & (cast.is_null() | (cast.cast(data.schema[column], strict=False) != original))
        bad = data.filter(lossy).get_column(column)
        if bad.len():
            problems.append(
                f"feature {column!r} ({data.schema[column]}) has {bad.len()} value(s) that do not fit "
                f"{target} exactly, e.g. {bad.head(_SAMPLE).to_list()}"
            )
    return problems


def _bad_columns(problems: list[str], schema: FeatureGroupSchema) -> set[str]:
    return {c for c in schema.columns if any(f"{c!r} has type" in p for p in problems)}


def _value_problems(schema: FeatureGroupSchema, data: pl.DataFrame, columns: set[str]) -> list[str]:
    """Null and metadata-constraint checks, computed in one aggregate pass."""
    required = [c for c in schema.entity_keys if c in columns]
    if schema.timestamp_key in columns:
        required.append(schema.timestamp_key)  # type: ignore[arg-type]
    required += [f.name for f in schema.features if not f.nullable and f.name in columns]

    checks: dict[str, tuple[str, pl.Expr]] = {}
    for column in required:
        checks[f"null:{column}"] = (column, pl.col(column).is_null())
    for feature in schema.features:
        if feature.name not in columns:
            continue
        meta = feature.metadata
        col = pl.col(feature.name)
        if meta.get("min") is not None:
            checks[f"min:{feature.name}"] = (feature.name, col < _literal(meta["min"]))
        if meta.get("max") is not None:
            checks[f"max:{feature.name}"] = (feature.name, col > _literal(meta["max"]))
        if meta.get("allowed_values") is not None:
            allowed = pl.Series(list(meta["allowed_values"]))
            checks[f"allowed:{feature.name}"] = (
                feature.name,
                col.is_not_null() & ~col.is_in(allowed.cast(data.schema[feature.name], strict=False).implode()),
            )
    if not checks:
        return []
    try:
        counts = data.select([expr.sum().alias(key) for key, (_, expr) in checks.items()]).row(0, named=True)
    except pl.exceptions.PolarsError as err:
        return [f"metadata constraints could not be checked: {err}"]
    problems: list[str] = []
    for key, count in counts.items():
        if not count:
            continue
        kind, column = key.split(":", 1)
        expr = checks[key][1]
        sample = data.filter(expr).get_column(column).head(_SAMPLE).to_list()
        meta = schema.get_feature(column).metadata if column in schema.feature_names else {}
        if kind == "null":
            role = "entity key" if column in schema.entity_keys else (
                "timestamp key" if column == schema.timestamp_key else "non-nullable feature"
            )
            problems.append(f"{role} {column!r} has {count} null value(s)")
        elif kind == "min":
            problems.append(f"feature {column!r} has {count} value(s) below min {meta['min']!r}, e.g. {sample}")
        elif kind == "max":
            problems.append(f"feature {column!r} has {count} value(s) above max {meta['max']!r}, e.g. {sample}")
        else:
            problems.append(
                f"feature {column!r} has {count} value(s) outside allowed_values "
                f"{list(meta['allowed_values'])!r}, e.g. {sample}"
            )
    return problems


def _literal(value: Any) -> pl.Expr:
    return pl.lit(value)
