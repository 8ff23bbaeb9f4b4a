"""Materialize a virtual group computed on Spark: Spark writes Parquet, delta-rs commits it.

The rows never pass through the driver: Spark executors write the Parquet files (microsecond
timestamps) into a fresh folder inside the group's Delta table, and deltalake commits them as
one transaction (``DeltaTable.create_write_transaction`` with one ``AddAction`` per file). The
hidden ``_tauro_seq`` column follows the materialized store's rule, ``(write number << 32) |
row index``, with the write number equal to the table version the commit creates; the row
index is the row's position in the persisted Spark result (partition offsets from one small
count job). The commit uses no retries: if another writer commits first, the written files are
deleted and a FeatureMaterializationError asks to run again.

After the commit the write is recorded, ``FeaturesWritten`` is published and, with
``sync_to_online``, the new rows are synced online from the watermark.

Limits (documented): key/time nulls are checked with one Spark aggregate, but ``metadata``
constraints (min, max, allowed values) are not checked on this path and writes are not profiled
for drift; date-partitioned tables (``partition_by_date``) are not supported here (use the
driver path).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from tauro_workbench.exceptions import FeatureMaterializationError, SchemaValidationError
from tauro_workbench.monitoring.events import FeaturesWritten
from tauro_workbench.stores.offline_table import DATE_COLUMN, SEQ_COLUMN

if TYPE_CHECKING:
    from tauro_workbench.registry import WriteRecord
    from tauro_workbench.schema import FeatureGroupSchema
    from tauro_workbench.stores.materialized import MaterializedFeatureStore
    from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

__all__ = ["write_group_with_spark"]


def write_group_with_spark(
    store: VirtualizedFeatureStore,
    schema: FeatureGroupSchema,
    target: MaterializedFeatureStore,
    *,
    mode: str = "append",
) -> WriteRecord:
    """Compute ``schema``'s group on Spark and commit it to ``target``'s Delta table.

    Raises:
        SchemaValidationError: If a key or the event time holds nulls (nothing is written).
        FeatureMaterializationError: If the commit fails (written files are removed).
    """
    import pyarrow.parquet as pq
    from deltalake import CommitProperties, DeltaTable
    from deltalake.transaction import AddAction, RemoveAction
    from pyspark.sql import functions as F

    executor: Any = store.executor
    spark = executor.spark
    started = time.perf_counter()
    uri = target.table_uri(schema.name, schema.version)
    table = target._table(schema)
    declared = schema.arrow_schema()
    sdf = executor.dataframe(store.group_sql(schema, list(schema.feature_names)))
    for field in declared:
        sdf = sdf.withColumn(field.name, F.col(field.name).cast(_spark_type(field.type)))
    sdf = sdf.persist()
    try:
        required = [*schema.entity_keys, *([schema.timestamp_key] if schema.timestamp_key else [])]
        required += [f.name for f in schema.features if not f.nullable]
        nulls = sdf.select([F.sum(F.col(c).isNull().cast("long")).alias(c) for c in required]).first()
        problems = [f"column {c!r} has {nulls[c]} null(s)" for c in required if nulls[c]]
        if problems:
            raise SchemaValidationError(problems, group=schema.name)
        counts = dict(sdf.groupBy(F.spark_partition_id().alias("p")).count().collect())
        rows = int(sum(counts.values()))
        if table.exists() and DATE_COLUMN in DeltaTable(uri).schema().to_arrow().names:  # type: ignore[attr-defined]
            raise FeatureMaterializationError(
                f"{uri!r} is partitioned by date; the Spark path writes unpartitioned tables only.",
                hint="Materialize with the DuckDB executor, or use a table without partition_by_date.",
            )
        number = (int(DeltaTable(uri).version()) if table.exists() else 0) + 1
        offsets, running = {}, 0
        for pid in sorted(counts):
            offsets[pid] = running
            running += counts[pid]
        offset_map = (
            F.create_map(*[x for p, o in offsets.items() for x in (F.lit(p), F.lit(o))]) if offsets else None
        )
        pid = F.spark_partition_id()
        index = F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)
        seq = F.lit(number << 32) + (offset_map[pid] if offset_map is not None else F.lit(0)) + index
        out = sdf.withColumn(SEQ_COLUMN, seq.cast("long")).select(*[*schema.columns, SEQ_COLUMN])
        folder = f"spark-{uuid.uuid4().hex}"
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        spark.conf.set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        out.write.mode("error").parquet(str(Path(uri) / folder))
    finally:
        sdf.unpersist()
    files = sorted(Path(uri, folder).glob("*.parquet"))
    if not table.exists():
        # the same empty creation commit (version 0) as the materialized store makes
        table._create(pq.read_schema(files[0]), [])  # type: ignore[attr-defined]
    delta = DeltaTable(uri)
    actions: list[AddAction | RemoveAction] = []
    for file in files:
        meta = pq.read_metadata(file)
        stat = file.stat()
        actions.append(
            AddAction(
                path=f"{folder}/{file.name}",
                size=stat.st_size,
                partition_values={},
                modification_time=int(stat.st_mtime * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": meta.num_rows}),
            )
        )
    try:
        delta.create_write_transaction(
            actions,
            mode=mode,
            schema=delta.schema(),
            commit_properties=CommitProperties(max_commit_retries=0, custom_metadata={"tauro.mode": mode}),
        )
    except Exception as err:
        shutil.rmtree(Path(uri) / folder, ignore_errors=True)
        raise FeatureMaterializationError(
            f"committing {len(actions)} Spark-written files to {uri!r} failed (nothing was committed): {err}",
            hint="Another writer may have committed first; run materialize again.",
        ) from err
    for crc in Path(uri, folder).glob(".*.crc"):
        crc.unlink()
    seconds = time.perf_counter() - started
    record = target.metadata.record_write(
        schema.name,
        schema.version,
        mode=mode,
        rows=rows,
        table_version=number,
        details={"format": "delta", "seconds": round(seconds, 6), "engine": "spark", "files": len(actions)},
    )
    target.events.publish(
        FeaturesWritten(
            group=schema.name,
            version=schema.version,
            rows=rows,
            mode=mode,
            table_version=number,
            write_id=record.id,
        )
    )
    if target.config.sync_to_online:
        # incremental from the sync watermark: only the rows of this commit are read back
        target.materialize_online(schema.name)
    logger.info(
        "spark {} {} rows to {} v{} (table version {}, {:.3f} s)",
        mode,
        rows,
        schema.name,
        schema.version,
        number,
        seconds,
    )
    return record


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
