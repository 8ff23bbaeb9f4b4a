"""Infer a FeatureGroupSchema from a frame or a Parquet/Delta/CSV file, so nobody types every feature.

Data types come from the frame's types (:meth:`TypeSpec.from_polars`; small integers widen to
INT). Feature types follow the data type: numbers are NUMERICAL, booleans and strings
CATEGORICAL, arrays VECTOR, maps and structs COMPLEX. A feature is nullable unless told
otherwise (``non_nullable=[...]``): one sample of data does not prove a column never holds nulls.
Only the frame's schema is read, never its rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from tauro_workbench.dtypes import DataType, TypeSpec
from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.frames import FrameLike, to_lazyframe
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema, FeatureType

__all__ = ["infer_schema"]

_NUMERIC = {DataType.INT, DataType.BIGINT, DataType.FLOAT, DataType.DOUBLE, DataType.DECIMAL}


def infer_schema(
    frame: FrameLike | str | os.PathLike[str],
    name: str,
    entity_keys: Sequence[str],
    timestamp_key: str | None = None,
    *,
    features: Sequence[str] | None = None,
    non_nullable: Sequence[str] = (),
    descriptions: dict[str, str] | None = None,
    **schema_options: Any,
) -> FeatureGroupSchema:
    """Return the schema of a feature group whose columns are ``frame``'s.

    Args:
        frame: A Polars/PyArrow/pandas frame, or the path of a Parquet, Delta or CSV source.
        name: The group's name.
        entity_keys: Key columns.
        timestamp_key: The event-time column (None for a group without event time).
        features: Feature columns, in order (default: every other column).
        non_nullable: Features declared ``nullable=False``.
        descriptions: Feature name -> description.
        **schema_options: Other :class:`FeatureGroupSchema` options (``ttl``, ``description``,
            ``created_timestamp_key``, ``tags``, ``version``).

    Returns:
        The schema (not registered: pass it to ``register``).

    Raises:
        SchemaValidationError: For a named column the frame lacks, or a type with no feature type.

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"user_id": [1], "age": [30], "city": ["Lima"]})
        >>> [(f.name, f.data_type.value) for f in infer_schema(df, "users", ["user_id"]).features]
        [('age', 'BIGINT'), ('city', 'STRING')]
    """
    columns = _schema_of(frame)
    created = schema_options.get("created_timestamp_key")
    used = [*entity_keys, *([timestamp_key] if timestamp_key else []), *([created] if created else [])]
    wanted = list(features) if features is not None else [c for c in columns if c not in used]
    missing = [c for c in [*used, *wanted, *non_nullable] if c not in columns]
    if missing:
        raise SchemaValidationError(
            [f"the frame has no column {c!r}" for c in dict.fromkeys(missing)],
            group=name,
        )
    texts = descriptions or {}
    inferred = []
    for column in wanted:
        try:
            spec = TypeSpec.from_polars(columns[column])
        except SchemaValidationError as err:
            raise SchemaValidationError(
                [f"column {column!r}: {err.problems[0] if err.problems else err}"], group=name
            ) from err
        inferred.append(
            FeatureSchema(
                column,
                spec,
                _feature_type(spec),
                description=texts.get(column, ""),
                nullable=column not in non_nullable,
            )
        )
    return FeatureGroupSchema(
        name=name,
        entity_keys=list(entity_keys),
        timestamp_key=timestamp_key,
        features=inferred,
        **schema_options,
    )


def _schema_of(frame: FrameLike | str | os.PathLike[str]) -> pl.Schema:
    if isinstance(frame, (str, os.PathLike)):
        path = Path(frame)
        text = os.fspath(path)
        if (path / "_delta_log").is_dir():
            return pl.scan_delta(text).collect_schema()
        if text.endswith(".csv"):
            return pl.scan_csv(text).collect_schema()
        return pl.scan_parquet(text).collect_schema()
    return to_lazyframe(frame).collect_schema()


def _feature_type(spec: TypeSpec) -> FeatureType:
    if spec.base in _NUMERIC:
        return FeatureType.NUMERICAL
    if spec.base is DataType.ARRAY:
        return FeatureType.VECTOR
    if spec.base in (DataType.MAP, DataType.STRUCT):
        return FeatureType.COMPLEX
    if spec.base in (DataType.TIMESTAMP, DataType.DATE):
        return FeatureType.TIMESERIES
    return FeatureType.CATEGORICAL
