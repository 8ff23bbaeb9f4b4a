"""Spark writes a query's result as Parquet files, for a Delta commit made by the caller.

The rows never pass through the driver: Spark executors write the Parquet files (microsecond
timestamps) into a fresh folder, cast to the caller's Arrow types, with a sequence column
``(write_number << 32) | row index`` where the row index is the row's position in the persisted
Spark result (partition offsets from one small count job). Key and non-null columns, and the range
of timestamp columns, are checked with one Spark aggregate before anything is written.

This module only writes files: committing them to a Delta table, recording the write and
syncing it online belong to :mod:`tauro_workbench.stores.promotion` (engines never import
stores or monitoring).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyarrow import types as pa_types

from tauro_workbench.exceptions import FeatureMaterializationError, SchemaValidationError
from tauro_workbench.validation import TIMESTAMP_MAX, TIMESTAMP_MIN

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["WrittenFiles", "write_parquet_files"]

_ROW_BITS = 32


@dataclass(frozen=True)
class WrittenFiles:
    """Parquet files written by an engine into ``folder`` (absolute), with their total rows."""

    folder: Path
    files: tuple[Path, ...]
    rows: int

    def discard(self) -> None:
        """Delete the folder and its files (after a failed commit)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def write_parquet_files(
    executor: Any,
    sql: str,
    parent: Path,
    *,
    columns: Sequence[str],
    arrow_schema: pa.Schema,
    required: Sequence[str],
    seq_column: str,
    write_number: int,
    group: str | None = None,
) -> WrittenFiles:
    """Compute ``sql`` on Spark and write it as Parquet files into a new folder under ``parent``.

    Args:
        executor: A :class:`~tauro_workbench.engines.spark.SparkQueryExecutor`.
        sql: The query (in the executor's dialect).
        parent: The folder (a Delta table's root) that receives a fresh ``spark-<uuid>`` folder.
        columns: Columns to write, in order.
        arrow_schema: Types to cast columns to (columns it lacks keep Spark's type).
        required: Columns that must hold no null.
        seq_column: Name of the sequence column added last.
        write_number: The number put in the sequence column's high bits.
        group: Feature group named in errors.

    Returns:
        The files written.

    Raises:
        SchemaValidationError: If a required column holds nulls or a timestamp column a time
            outside the supported range (nothing is written).
        FeatureMaterializationError: For a column type the Spark path cannot write.
    """
    from pyspark.sql import functions as F

    spark = executor.spark
    sdf = executor.dataframe(sql)
    for field in arrow_schema:
        sdf = sdf.withColumn(field.name, F.col(field.name).cast(_spark_type(field.type)))
    sdf = sdf.persist()
    try:
        _check(sdf, required, [f.name for f in arrow_schema if pa_types.is_timestamp(f.type)], group)
        counts = dict(sdf.groupBy(F.spark_partition_id().alias("p")).count().collect())
        rows = int(sum(counts.values()))
        offsets, running = {}, 0
        for pid in sorted(counts):
            offsets[pid] = running
            running += counts[pid]
        offset_map = (
            F.create_map(*[x for p, o in offsets.items() for x in (F.lit(p), F.lit(o))]) if offsets else None
        )
        pid = F.spark_partition_id()
        index = F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)
        seq = (
            F.lit(write_number << _ROW_BITS)
            + (offset_map[pid] if offset_map is not None else F.lit(0))
            + index
        )
        out = sdf.withColumn(seq_column, seq.cast("long")).select(*[*columns, seq_column])
        folder = Path(parent) / f"spark-{uuid.uuid4().hex}"
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        spark.conf.set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        out.write.mode("error").parquet(str(folder))
    finally:
        sdf.unpersist()
    for crc in folder.glob(".*.crc"):
        crc.unlink()
    return WrittenFiles(folder, tuple(sorted(folder.glob("*.parquet"))), rows)


def _check(sdf: Any, required: Sequence[str], timed: Sequence[str], group: str | None) -> None:
    """Raise :class:`SchemaValidationError` for nulls in ``required`` or times out of range.

    One Spark aggregate counts both. Times must lie in [TIMESTAMP_MIN, TIMESTAMP_MAX], as for
    every write (:mod:`tauro_workbench.validation`): Spark holds years 1-9999, nanosecond
    engines do not.
    """
    from pyspark.sql import functions as F

    counts = [F.sum(F.col(c).isNull().cast("long")).alias(f"null {c}") for c in required]
    counts += [
        F.sum(((F.col(c) < F.lit(TIMESTAMP_MIN)) | (F.col(c) > F.lit(TIMESTAMP_MAX))).cast("long")).alias(
            f"range {c}"
        )
        for c in timed
    ]
    if not counts:
        return
    found = sdf.select(counts).first().asDict()
    problems = [f"column {c!r} has {found[f'null {c}']} null(s)" for c in required if found[f"null {c}"]]
    problems += [
        f"column {c!r} has {found[f'range {c}']} value(s) outside the supported range "
        f"[{TIMESTAMP_MIN.isoformat()}, {TIMESTAMP_MAX.isoformat()}]; clip or drop them (nanosecond "
        "engines such as pandas cannot hold them)"
        for c in timed
        if found[f"range {c}"]
    ]
    if problems:
        raise SchemaValidationError(problems, group=group)


def _spark_type(arrow_type: Any) -> str:
    """Return the Spark SQL type name of an Arrow type from the group's declared schema."""
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_large_string(arrow_type) or pa.types.is_string(arrow_type):
        return "string"
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    names = {
        pa.int32(): "int",
        pa.int64(): "bigint",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.date32(): "date",
    }
    if arrow_type in names:
        return names[arrow_type]
    raise FeatureMaterializationError(f"the Spark path cannot write columns of type {arrow_type} yet")
