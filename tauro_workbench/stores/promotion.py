"""The one promotion path: virtual -> materialized (Delta) -> online.

Every write to an offline table ends the same way, whichever engine computed it:
compute -> validate -> one table commit -> :func:`record_commit`, which records the write in the
history, stores the drift report (where the rows were on the driver and could be profiled),
publishes ``FeaturesWritten`` and syncs the rows online when ``sync_to_online`` is set.

:func:`materialize` computes a virtual group and commits it:

- on an executor with the ``WRITE_FILES`` capability (Spark) and a Delta target, the engine
  writes the Parquet files into the table's folder and delta-rs commits them as one transaction
  (one ``AddAction`` per file): the rows never reach the driver, so the write is not profiled
  for drift and ``metadata`` constraints are not checked (keys, event time and non-null
  features are, with one engine aggregate);
- otherwise the result is computed on the driver and written with ``write_features`` (schema
  validation, drift, merge/backfill modes).

:func:`promote` is the verb behind ``Workbench.promote``: idempotent, it records in the write
details the digest of the virtual definition and the fingerprints of the sources it read, and
re-promoting when neither changed changes nothing and says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from loguru import logger

from tauro_workbench.engines import WRITE_FILES, has_capability
from tauro_workbench.exceptions import ConfigurationError, FeatureMaterializationError
from tauro_workbench.monitoring.events import FeaturesWritten, Promoted
from tauro_workbench.registry import WriteRecord
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND
from tauro_workbench.stores.offline_table import DATE_COLUMN, SEQ_COLUMN
from tauro_workbench.stores.reconcile import commit_info

if TYPE_CHECKING:
    from tauro_workbench.monitoring.drift import DriftReport
    from tauro_workbench.stores.materialized import MaterializedFeatureStore
    from tauro_workbench.stores.online_serving import SyncReport
    from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

__all__ = ["PromotionResult", "materialize", "promote", "record_commit", "sync_online"]

PromotionTarget = Literal["materialized", "online"]
_TARGETS = ("materialized", "online")


@dataclass(frozen=True)
class PromotionResult:
    """What one ``promote`` did.

    Attributes:
        group: The feature group.
        version: Its schema version.
        target: ``"materialized"`` or ``"online"``.
        rows: Rows written to the table (materialized) or entities synced (online).
        table_version: The offline table version now holding the group (None: no table).
        seconds: Wall time of the call.
        drift_verdict: Verdict of the write's drift report (None: not profiled, e.g. on Spark).
        changed: False when the call found nothing to do (an idempotent re-run).
        message: What happened, in one sentence.
    """

    group: str
    version: int
    target: str
    rows: int
    table_version: int | None
    seconds: float
    drift_verdict: str | None
    changed: bool
    message: str

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return (
            f"PromotionResult({self.group} v{self.version} -> {self.target}: "
            f"{'changed' if self.changed else 'unchanged'}, rows={self.rows}, "
            f"table_version={self.table_version}, drift={self.drift_verdict}, {self.seconds:.3f}s)"
        )

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


# -- the shared end of every write ---------------------------------------------------------
def record_commit(
    store: MaterializedFeatureStore,
    schema: FeatureGroupSchema,
    *,
    mode: str,
    rows: int,
    table_version: int | None,
    details: dict[str, Any],
    frame: pl.DataFrame | None = None,
    report: DriftReport | None = None,
) -> WriteRecord:
    """Record a committed write: history, drift report, ``FeaturesWritten``, online sync.

    Args:
        store: The materialized store whose table was committed.
        schema: The group written.
        mode: The write mode.
        rows: Rows committed.
        table_version: The table version the commit created.
        details: Write details kept in the history (format, seconds, engine, ...).
        frame: The rows, when they are on the driver: synced online from memory. Without them
            the sync reads the new rows back from the table (from the sync watermark).
        report: The drift report of ``frame`` (from ``monitor.before_write``), if profiled.

    Returns:
        The write record, with the stored drift report in its details.

    Raises:
        OnlineStoreError: If the online sync fails; the offline write is kept and recorded.
    """
    record = store.metadata.record_write(
        schema.name, schema.version, mode=mode, rows=rows, table_version=table_version, details=details
    )
    stored = store.monitor.after_write(schema, record, report)
    if stored is not None:  # return what the registry now holds for this write
        record = dataclasses.replace(record, details={**record.details, "drift": stored.to_dict()})
    # Published before the online sync: the offline write is committed even if the sync fails.
    store.events.publish(
        FeaturesWritten(
            group=schema.name,
            version=schema.version,
            rows=rows,
            mode=mode,
            table_version=table_version,
            write_id=record.id,
        )
    )
    if frame is not None:
        store._sync_after_write(schema, frame, record)
    elif store.config.sync_to_online:
        # incremental from the sync watermark: only the rows of this commit are read back
        store.materialize_online(schema.name, version=schema.version)
    logger.info(
        "{}{} {} rows to {} v{} (table version {}, {:.3f} s)",
        f"{details['engine']} " if "engine" in details else "",
        mode,
        rows,
        schema.name,
        schema.version,
        table_version,
        float(details.get("seconds", 0.0)),
    )
    return record


# -- virtual -> materialized ---------------------------------------------------------------
def materialize(
    virtual: VirtualizedFeatureStore,
    target: MaterializedFeatureStore,
    group: str,
    *,
    mode: str = "append",
    details: dict[str, Any] | None = None,
) -> WriteRecord:
    """Compute a virtual group and commit it to ``target``'s table in one transaction.

    Args:
        virtual: The store holding the group's definition and the executor.
        target: The materialized store written.
        group: The virtual group (its latest version).
        mode: ``append`` or ``overwrite`` (any mode of ``write_features`` on the driver path).
        details: Extra write details recorded with the write.

    Returns:
        The write record.

    Raises:
        SchemaValidationError: If the result breaks the schema (nothing is written).
        FeatureMaterializationError: If the commit fails (written files are removed).

    Example:
        >>> materialize(virtual, materialized, "user_features")  # doctest: +SKIP
    """
    schema = virtual.metadata.get_feature_group(group)
    if target.metadata.find_feature_group(schema.name, schema.version) is None:
        target.register_features(schema)
    if has_capability(virtual.executor, WRITE_FILES) and target.storage_format == "delta":
        if mode in ("append", "overwrite"):
            return _materialize_with_files(virtual, target, schema, mode=mode, details=details or {})
        logger.warning(
            "materializing {} through the driver: the file-writing path supports append/overwrite",
            schema.name,
        )
    frame = virtual.compute_group(schema.name, list(schema.feature_names))
    record = target.write_features(schema.name, frame, mode=mode)
    if details:
        target.metadata.update_write(record.id, details)
        record = dataclasses.replace(record, details={**record.details, **details})
    return record


def _materialize_with_files(
    virtual: VirtualizedFeatureStore,
    target: MaterializedFeatureStore,
    schema: FeatureGroupSchema,
    *,
    mode: str,
    details: dict[str, Any],
) -> WriteRecord:
    """The engine writes Parquet files into the Delta table's folder; one delta-rs commit adds them."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import CommitProperties, DeltaTable
    from deltalake.transaction import AddAction, RemoveAction

    started = time.perf_counter()
    table: Any = target._table(schema)
    uri = table.uri
    if table.exists() and DATE_COLUMN in DeltaTable(uri).schema().to_arrow().names:  # type: ignore[attr-defined]
        raise FeatureMaterializationError(
            f"{uri!r} is partitioned by date; the Spark path writes unpartitioned tables only.",
            hint="Materialize with the DuckDB executor, or use a table without partition_by_date.",
        )
    number = (int(table.version()) if table.exists() else 0) + 1
    required = [*schema.entity_keys, *([schema.timestamp_key] if schema.timestamp_key else [])]
    required += [f.name for f in schema.features if not f.nullable]
    table.path.mkdir(parents=True, exist_ok=True)
    write_id = uuid.uuid4().hex
    written = virtual.executor.write_files(  # type: ignore[attr-defined]
        virtual.group_sql(schema, list(schema.feature_names)),
        table.path,
        columns=schema.columns,
        arrow_schema=schema.arrow_schema(),
        required=required,
        seq_column=SEQ_COLUMN,
        write_number=number,
        group=schema.name,
    )
    try:
        if not table.exists():
            # the same empty creation commit (version 0) as the materialized store makes
            first = (
                pq.read_schema(written.files[0])
                if written.files
                else pa.schema([*schema.arrow_schema(), pa.field(SEQ_COLUMN, pa.int64())])
            )
            table._create(first, [])
        delta = DeltaTable(uri)
        actions: list[AddAction | RemoveAction] = []
        for file in written.files:
            stat = file.stat()
            actions.append(
                AddAction(
                    path=f"{written.folder.name}/{file.name}",
                    size=stat.st_size,
                    partition_values={},
                    modification_time=int(stat.st_mtime * 1000),
                    data_change=True,
                    stats=json.dumps({"numRecords": pq.read_metadata(file).num_rows}),
                )
            )
        delta.create_write_transaction(
            actions,
            mode=mode,
            schema=delta.schema(),
            # the write's identity in the Delta log, so reconciliation can rebuild its record
            commit_properties=CommitProperties(
                max_commit_retries=0,
                custom_metadata=commit_info(
                    schema.name, schema.version, mode=mode, rows=written.rows, write_id=write_id
                ),
            ),
        )
    except Exception as err:
        written.discard()
        raise FeatureMaterializationError(
            f"committing {len(written.files)} engine-written files to {uri!r} failed "
            f"(nothing was committed): {err}",
            hint="Another writer may have committed first; run materialize again.",
        ) from err
    seconds = time.perf_counter() - started
    return record_commit(
        target,
        schema,
        mode=mode,
        rows=written.rows,
        table_version=number,
        details={
            "format": "delta",
            "seconds": round(seconds, 6),
            "engine": virtual.executor.name,
            "files": len(written.files),
            "write_id": write_id,
            **details,
        },
    )


# -- materialized -> online ----------------------------------------------------------------
def sync_online(store: MaterializedFeatureStore, group: str, **options: Any) -> SyncReport:
    """Sync a group online (incrementally from the watermark) and publish ``Promoted``.

    Raises:
        OnlineStoreError: If the sync fails (re-run to complete it).
    """
    report = store.materialize_online(group, **options)
    store.events.publish(Promoted(group=group, target="online", rows=report.entities))
    return report


# -- the verb ------------------------------------------------------------------------------
def definition_state(virtual: VirtualizedFeatureStore, schema: FeatureGroupSchema) -> dict[str, Any]:
    """Return what a materialization of a virtual group depends on: definition digest, sources.

    Raises:
        VirtualizationQueryError: If the group has no virtual definition.
    """
    definition = virtual.get_definition(schema.name)
    text = json.dumps(definition.to_document(), sort_keys=True)
    return {
        "definition": hashlib.sha256(text.encode()).hexdigest(),
        "version": schema.version,
        "sources": virtual.executor.sources.fingerprints(definition.sources),
    }


def promote(
    virtual: VirtualizedFeatureStore,
    target: MaterializedFeatureStore,
    group: str,
    *,
    to: str = "materialized",
) -> PromotionResult:
    """Promote a group one step: virtual -> materialized, or on to online (through materialized).

    Idempotent: a virtual group whose definition and sources are unchanged since its last
    promotion is not computed again (``changed=False``); an online promotion syncs only rows
    written since the last complete sync.

    Args:
        virtual: The store holding virtual definitions and the executor.
        target: The materialized store (and its online store).
        group: The feature group.
        to: ``"materialized"`` or ``"online"``.

    Returns:
        What was done.

    Raises:
        ConfigurationError: For an unknown target, or ``"online"`` without an online store.
        FeatureMaterializationError: For a group that is neither virtual nor written.

    Example:
        >>> promote(virtual, materialized, "user_features", to="online")  # doctest: +SKIP
    """
    started = time.perf_counter()
    if to not in _TARGETS:
        raise ConfigurationError(f"Cannot promote {group!r} to {to!r}; valid targets: {list(_TARGETS)}.")
    schema = target.metadata.get_feature_group(group)
    step = _to_materialized(virtual, target, schema, started)
    if to == "materialized":
        return step
    target.online  # noqa: B018 - raises ConfigurationError when no online store is enabled
    report = sync_online(target, schema.name, version=schema.version)
    changed = step.changed or report.applied > 0
    what = f"synced {report.entities} entities online ({report.applied} updated)"
    if not changed:
        what = "the online copy is already up to date; nothing was synced"
    return PromotionResult(
        schema.name,
        schema.version,
        "online",
        report.entities,
        target._table(schema).version(),
        time.perf_counter() - started,
        step.drift_verdict,
        changed,
        f"{step.message}; {what}." if step.changed else f"{what[0].upper()}{what[1:]}.",
    )


def _to_materialized(
    virtual: VirtualizedFeatureStore,
    target: MaterializedFeatureStore,
    schema: FeatureGroupSchema,
    started: float,
) -> PromotionResult:
    table = target._table(schema)
    last = target.metadata.list_writes(schema.name, schema.version, limit=1)
    is_virtual = target.metadata.find_document(VIRTUAL_DEFINITION_KIND, schema.name) is not None
    if not is_virtual:
        if table.version() is None:
            raise FeatureMaterializationError(
                f"Feature group {schema.name!r} is neither virtual nor written, so there is nothing to promote.",
                hint="Define it with define_virtual(group, sql=...) or write rows with write(group, data).",
            )
        return _unchanged(schema, last, table.version(), started, "it is stored data, not a virtual group")
    state = definition_state(virtual, schema)
    previous = last[-1] if last else None
    if (
        previous is not None
        and previous.details.get("promotion") == state
        and previous.table_version == table.version()
    ):
        return _unchanged(
            schema, last, table.version(), started, "its definition and sources are unchanged since then"
        )
    mode = "overwrite" if table.version() is not None else "append"
    record = materialize(virtual, target, schema.name, mode=mode, details={"promotion": state})
    verdict = (record.details.get("drift") or {}).get("verdict")
    target.events.publish(Promoted(group=schema.name, target="materialized", rows=record.rows))
    return PromotionResult(
        schema.name,
        schema.version,
        "materialized",
        record.rows,
        record.table_version,
        time.perf_counter() - started,
        verdict,
        True,
        f"Materialized {record.rows} rows of {schema.name!r} v{schema.version} "
        f"(table version {record.table_version}, {mode})",
    )


def _unchanged(
    schema: FeatureGroupSchema,
    last: list[WriteRecord],
    table_version: int | None,
    started: float,
    reason: str,
) -> PromotionResult:
    previous = last[-1] if last else None
    verdict = None if previous is None else (previous.details.get("drift") or {}).get("verdict")
    return PromotionResult(
        schema.name,
        schema.version,
        "materialized",
        0,
        table_version,
        time.perf_counter() - started,
        verdict,
        False,
        f"{schema.name!r} v{schema.version} is already materialized at table version {table_version}; "
        f"nothing changed: {reason}",
    )
