"""Conversions of user data (Polars, PyArrow, pandas) and timestamps into the canonical form.

Canonical form: Polars frames whose time columns are ``Datetime("us", "UTC")``. Naive
datetimes are taken as UTC; aware ones are converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import polars as pl

from tauro_workbench.exceptions import SchemaValidationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["UTC_US", "FrameLike", "to_dataframe", "to_lazyframe", "to_utc", "utc_datetime_expr"]

FrameLike: TypeAlias = "pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatch | Any"
UTC_US = pl.Datetime("us", "UTC")


def to_lazyframe(data: FrameLike) -> pl.LazyFrame:
    """Return ``data`` (Polars eager or lazy, PyArrow table, batch or reader, pandas) as a LazyFrame.

    Raises:
        SchemaValidationError: If the object is not a supported frame type.
    """
    if isinstance(data, pl.LazyFrame):
        return data
    if isinstance(data, pl.DataFrame):
        return data.lazy()
    module = type(data).__module__
    # checked by module name so that pyarrow and pandas are only imported when given
    if module.startswith("pyarrow"):
        import pyarrow as pa

        if isinstance(data, pa.RecordBatchReader):
            data = data.read_all()
        if isinstance(data, (pa.Table, pa.RecordBatch)):
            return pl.from_arrow(data).lazy()  # type: ignore[union-attr]
    if module.startswith("pandas") and type(data).__name__ == "DataFrame":
        return pl.from_pandas(data).lazy()
    raise SchemaValidationError(
        f"unsupported data of type {type(data).__name__}",
        hint="Pass a Polars DataFrame or LazyFrame, a PyArrow Table or RecordBatch, or a pandas DataFrame.",
    )


def to_dataframe(data: FrameLike) -> pl.DataFrame:
    """Return ``data`` as an eager Polars DataFrame (collecting lazy frames)."""
    if isinstance(data, pl.DataFrame):
        return data
    return to_lazyframe(data).collect()


def utc_datetime_expr(column: str, dtype: pl.DataType) -> pl.Expr:
    """Return an expression converting ``column`` of type ``dtype`` to UTC microseconds."""
    expr = pl.col(column)
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            expr = expr.dt.replace_time_zone("UTC")
        elif dtype.time_zone != "UTC":
            expr = expr.dt.convert_time_zone("UTC")
        if dtype.time_unit != "us":
            expr = expr.dt.cast_time_unit("us")
        return expr
    return expr.cast(UTC_US)


def to_utc(value: datetime | date | str) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive values are taken as UTC).

    Strings are parsed as ISO 8601.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise SchemaValidationError(f"{value!r} is not an ISO 8601 datetime") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise SchemaValidationError(f"expected a datetime, got {value!r}")
