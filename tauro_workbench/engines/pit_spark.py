"""The point-in-time join on Spark, with window functions (Spark has no ``ASOF JOIN``).

Entity rows and feature rows are stacked into one frame, partitioned by the entity keys and
ordered by (time, feature rows before entity rows, tie-breakers with null first, feature row
position). The winner of an entity row is then the last feature row before it: ``last(payload,
ignorenulls)`` over the rows up to the current one. The payload is a struct of the event time
and the feature values, so a null feature value in the winning row stays null instead of being
skipped. The ttl is checked on the winner. One shuffle, no range join, so skew cannot blow it up.

Full ties (equal keys, event time and tie-breakers) go to the later feature row as numbered by
``monotonically_increasing_id``, which follows the frame's order for frames built from Arrow,
pandas or files. The result is sorted in entity-row order the same way.

pyspark is imported only when this module is used.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from loguru import logger

from tauro_workbench.engines.pit import PointInTimeSpec
from tauro_workbench.exceptions import MissingExtraError, PointInTimeError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["point_in_time_join_spark"]

_ROW = "__tauro_row"
_LOC = "__tauro_loc"
_TIME = "__tauro_time"
_KIND = "__tauro_kind"
_ENTITY = "__tauro_entity"
_PAYLOAD = "__tauro_payload"
_WINNER = "__tauro_winner"
_EVENT = "__tauro_event_us"


def point_in_time_join_spark(
    entity_sdf: DataFrame, features_sdf: DataFrame, spec: PointInTimeSpec
) -> DataFrame:
    """Join ``features_sdf`` onto ``entity_sdf`` as of each entity row's time, on Spark.

    Same semantics as :func:`tauro_workbench.engines.pit.point_in_time_join`; the result is
    sorted in entity-row order.

    Args:
        entity_sdf: Entity rows with the keys and ``spec.entity_time`` (TIMESTAMP, TIMESTAMP_NTZ
            taken as UTC, or DATE).
        features_sdf: Feature rows with the keys, ``spec.event_time``, tie-breakers and features.
        spec: What to join.

    Returns:
        A Spark DataFrame: every entity column, then ``spec.outputs``.

    Raises:
        MissingExtraError: If pyspark is not installed.
        PointInTimeError: For missing or clashing columns, or unjoinable key or time types.

    Example:
        >>> out = point_in_time_join_spark(spark.createDataFrame(labels.to_arrow()),
        ...                                spark.createDataFrame(amounts.to_arrow()), spec)  # doctest: +SKIP
    """
    try:
        from pyspark.sql import Window
        from pyspark.sql import functions as F
        from pyspark.sql import types as T
    except ImportError as err:  # pragma: no cover - the dev environment has pyspark
        raise MissingExtraError("pyspark", extra="spark") from err

    e_types = {f.name: f.dataType for f in entity_sdf.schema.fields}
    f_types = {f.name: f.dataType for f in features_sdf.schema.fields}
    _check(spec, e_types, f_types, T)
    session_tz = entity_sdf.sparkSession.conf.get("spark.sql.session.timeZone") or "UTC"

    def micros(column: str, dtype: Any) -> Column:
        col = F.col(column)
        if isinstance(dtype, T.DateType):
            return F.unix_date(col).cast("long") * 86_400_000_000
        if isinstance(dtype, T.TimestampNTZType):
            # Naive means UTC: shift the session-zone reading back to the wall clock in UTC.
            return F.unix_micros(F.from_utc_timestamp(col.cast("timestamp"), session_tz))
        return F.unix_micros(col)

    def key(column: str) -> Column:
        both_integral = isinstance(e_types[column], T.IntegralType) and isinstance(
            f_types[column], T.IntegralType
        )
        return (F.col(column).cast("long") if both_integral else F.col(column)).alias(column)

    keys = list(spec.entity_keys)
    entity_struct = T.StructType([T.StructField(c, t) for c, t in e_types.items()])
    payload_fields = [T.StructField(_EVENT, T.LongType())]
    payload_fields += [
        T.StructField(o, f_types[c]) for c, o in zip(spec.feature_columns, spec.outputs, strict=True)
    ]
    payload_struct = T.StructType(payload_fields)
    ties = [f"__tauro_tb{i}" for i in range(len(spec.tie_breakers))]

    entity_rows = entity_sdf.withColumn(_ROW, F.monotonically_increasing_id()).select(
        *[key(k) for k in keys],
        micros(spec.entity_time, e_types[spec.entity_time]).alias(_TIME),
        F.lit(1).alias(_KIND),
        *[F.lit(None).cast(f_types[c]).alias(t) for c, t in zip(spec.tie_breakers, ties, strict=True)],
        F.lit(None).cast("long").alias(_LOC),
        F.lit(None).cast(payload_struct).alias(_PAYLOAD),
        F.struct(*[F.col(c) for c in e_types]).alias(_ENTITY),
        F.col(_ROW),
    )
    event = micros(spec.event_time, f_types[spec.event_time])
    feature_rows = (
        features_sdf.withColumn(_LOC, F.monotonically_increasing_id())
        .select(
            *[key(k) for k in keys],
            event.alias(_TIME),
            F.lit(0).alias(_KIND),
            *[F.col(c).alias(t) for c, t in zip(spec.tie_breakers, ties, strict=True)],
            F.col(_LOC),
            F.struct(
                event.alias(_EVENT),
                *[F.col(c).alias(o) for c, o in zip(spec.feature_columns, spec.outputs, strict=True)],
            ).alias(_PAYLOAD),
            F.lit(None).cast(entity_struct).alias(_ENTITY),
            F.lit(None).cast("long").alias(_ROW),
        )
        .where(F.col(_TIME).isNotNull())
    )
    for k in keys:
        feature_rows = feature_rows.where(F.col(k).isNotNull())
    window = (
        Window.partitionBy(*keys)
        .orderBy(
            F.col(_TIME).asc_nulls_first(),
            F.col(_KIND),
            *[F.col(t).asc_nulls_first() for t in ties],
            F.col(_LOC),
        )
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    stacked = feature_rows.unionByName(entity_rows)
    winners = stacked.withColumn(_WINNER, F.last(F.col(_PAYLOAD), ignorenulls=True).over(window)).where(
        F.col(_KIND) == 1
    )
    valid = F.col(_TIME).isNotNull() & F.col(_WINNER).isNotNull()
    if spec.ttl is not None:
        valid = valid & (
            F.col(f"{_WINNER}.{_EVENT}") >= F.col(_TIME) - F.lit(spec.ttl // timedelta(microseconds=1))
        )
    for k in keys:
        valid = valid & F.col(k).isNotNull()
    out = winners.select(
        F.col(_ROW),
        *[F.col(f"{_ENTITY}.{c}").alias(c) for c in e_types],
        *[F.when(valid, F.col(f"{_WINNER}.{o}")).alias(o) for o in spec.outputs],
    )
    logger.debug("Spark point-in-time join on keys {} (ttl {})", keys, spec.ttl)
    return out.orderBy(_ROW).drop(_ROW)


def _check(spec: PointInTimeSpec, e_types: dict[str, Any], f_types: dict[str, Any], T: Any) -> None:
    missing = [c for c in (*spec.entity_keys, spec.entity_time) if c not in e_types]
    if missing:
        raise PointInTimeError(f"the entity frame lacks columns {missing}; it has {list(e_types)}")
    needed = (*spec.entity_keys, spec.event_time, *spec.tie_breakers, *spec.feature_columns)
    missing = [c for c in needed if c not in f_types]
    if missing:
        raise PointInTimeError(f"the feature frame lacks columns {missing}; it has {list(f_types)}")
    clash = [c for c in spec.outputs if c in e_types]
    if clash:
        raise PointInTimeError(
            f"output columns {clash} already exist in the entity frame",
            hint="Rename those entity columns or use full_feature_names=True.",
        )
    for k in spec.entity_keys:
        left, right = e_types[k], f_types[k]
        if left != right and not (isinstance(left, T.IntegralType) and isinstance(right, T.IntegralType)):
            raise PointInTimeError(
                f"entity key {k!r} is {left.simpleString()} in the entity frame but {right.simpleString()} in the feature frame"
            )
    times = (T.TimestampType, T.TimestampNTZType, T.DateType)
    for column, dtype in (
        (spec.entity_time, e_types[spec.entity_time]),
        (spec.event_time, f_types[spec.event_time]),
    ):
        if not isinstance(dtype, times):
            raise PointInTimeError(
                f"time column {column!r} is {dtype.simpleString()}; expected a timestamp or date"
            )
