"""Reconciliation: the registry's write history rebuilt from the Delta log.

A write commits to its Delta table first and is recorded in the registry second. A process
killed between the two, or a registry too busy to take the record, would leave a table version
with no write record. Every commit therefore carries its write in the Delta commitInfo
(:func:`commit_info`: ``tauro.write_id``, ``tauro.group``, ``tauro.version``, ``tauro.mode``,
``tauro.rows``), and :func:`reconcile_table` re-creates the missing records from it:

- on open: the first time a store opens a group version's table;
- before reads of write history (:meth:`MaterializedFeatureStore.list_writes`);
- when a write is retried with a ``write_id`` found in the log but not in the registry;
- on demand: :meth:`MaterializedFeatureStore.reconcile`.

Recording is idempotent (:meth:`~tauro_workbench.history.HistoryMixin.record_write` matches a
write id or a table commit in the same transaction as the insert), so a writer and a
reconciliation racing on the same commit leave exactly one record. A registry document
``offline_reconcile/<group>/v<version>`` keeps how far the log has been checked (with the
table's id, so a recreated table is checked from the start); later runs read only newer commits.

Reconciled records carry ``details["reconciled"] = True``. They have no drift profile, and no
``FeaturesWritten`` event is published for them; with ``sync_to_online`` they are marked
``online: pending`` and the next ``materialize_online`` (incremental, from its watermark) pushes
their rows. Commits without ``tauro.mode`` (table creation, vacuum, optimize, other tools) are
not writes and get no record. Parquet tables have no commit log: their writes are idempotent by
``write_id`` through the registry only.

Example:
    >>> commit_info("users", 1, mode="append", rows=3, write_id="w1")["tauro.rows"]
    '3'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from tauro_workbench.exceptions import ConfigurationError
from tauro_workbench.registry import FeatureStoreMetadata, WriteRecord
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.stores.offline_table import DeltaOfflineTable, OfflineTable, TimeWindow

__all__ = [
    "RECONCILE_DOCUMENT",
    "check_write_id",
    "commit_info",
    "find_committed_write",
    "reconcile_key",
    "reconcile_table",
]

#: Registry document kind keeping how far each table's log was reconciled.
RECONCILE_DOCUMENT = "offline_reconcile"

_WRITE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@=+-]{0,127}")


def check_write_id(write_id: str) -> str:
    """Return ``write_id`` if it is a valid write id (1-128 letters, digits, ``._:@=+-``).

    Raises:
        ConfigurationError: Naming the bad id.

    Example:
        >>> check_write_id("nightly-2024-05-01")
        'nightly-2024-05-01'
    """
    if not isinstance(write_id, str) or not _WRITE_ID.fullmatch(write_id):
        raise ConfigurationError(
            f"invalid write_id {write_id!r}: use 1-128 letters, digits or ._:@=+- (starting with a "
            "letter or digit)",
            hint="Pass an id such as 'nightly-2024-05-01', or none for a generated one.",
        )
    return write_id


def reconcile_key(schema: FeatureGroupSchema) -> str:
    """Return the name of the reconciliation document of a group version."""
    return f"{schema.name}/v{schema.version}"


def commit_info(
    group: str,
    version: int,
    *,
    mode: str,
    rows: int,
    write_id: str,
    window: TimeWindow | None = None,
) -> dict[str, str]:
    """Return the commitInfo metadata identifying a write (text values)."""
    info = {
        "tauro.write_id": write_id,
        "tauro.group": group,
        "tauro.version": str(version),
        "tauro.mode": mode,
        "tauro.rows": str(rows),
    }
    if window is not None:
        info["tauro.window"] = f"{window[1].isoformat()}/{window[2].isoformat()}"
    return info


def _rows(commit: dict[str, Any]) -> int:
    if commit.get("tauro.rows") is not None:
        return int(str(commit["tauro.rows"]))
    metrics = commit.get("operationMetrics") or {}
    for key in ("num_source_rows", "num_added_rows"):
        if isinstance(metrics, dict) and metrics.get(key) is not None:
            return int(metrics[key])
    return 0


def reconcile_table(
    metadata: FeatureStoreMetadata,
    schema: FeatureGroupSchema,
    table: OfflineTable,
    *,
    online_pending: bool = False,
) -> list[WriteRecord]:
    """Record every commit of ``table`` that has no write record; return the records created.

    Args:
        metadata: The registry.
        schema: The group version the table belongs to.
        table: Its offline table (a Parquet table has no log: nothing to do).
        online_pending: Mark the created records ``online: pending`` (``sync_to_online``).

    Raises:
        MetadataError: If the registry cannot be read or written (nothing is lost: the next
            run records the commits).

    Example:
        >>> reconcile_table(store.metadata, schema, store._table(schema))  # doctest: +SKIP
        []
    """
    if not isinstance(table, DeltaOfflineTable) or not table.exists():
        return []
    table_id = table.table_id()
    key = reconcile_key(schema)
    state = metadata.find_document(RECONCILE_DOCUMENT, key) or {}
    through = int(state.get("through", 0)) if state.get("table_id") == table_id else 0
    commits = table.log_commits(through)
    if not commits:
        return []
    known = {
        r.table_version
        for r in metadata.list_writes(schema.name, schema.version)
        if "deleted_at" not in r.details
        and r.details.get("committed") is not False
        and r.details.get("table_id", table_id) == table_id
    }
    created: list[WriteRecord] = []
    for commit in commits:
        version = int(str(commit["version"]))
        if version in known or commit.get("tauro.mode") is None:
            continue
        if str(commit.get("tauro.group", schema.name)) != schema.name:
            logger.warning(
                "{}: commit {} names group {!r}; not recorded", table.uri, version, commit["tauro.group"]
            )
            continue
        details: dict[str, Any] = {"format": table.format, "table_id": table_id, "reconciled": True}
        if commit.get("tauro.write_id") is not None:
            details["write_id"] = str(commit["tauro.write_id"])
        if commit.get("tauro.window") is not None:
            details["window"] = str(commit["tauro.window"]).split("/")
        if online_pending:
            details["online"] = {"status": "pending"}
        record = metadata.record_write(
            schema.name,
            schema.version,
            mode=str(commit["tauro.mode"]),
            rows=_rows(commit),
            table_version=version,
            details=details,
            written_at=datetime.fromtimestamp(int(str(commit["timestamp"])) / 1000, UTC),
        )
        if record.details.get("reconciled"):
            created.append(record)
    newest = max(int(str(c["version"])) for c in commits)
    metadata.put_document(RECONCILE_DOCUMENT, key, {"table_id": table_id, "through": newest})
    if created:
        logger.warning(
            "recorded {} commit(s) of {} v{} that had no write record (table versions {})",
            len(created),
            schema.name,
            schema.version,
            [r.table_version for r in created],
        )
    return created


def find_committed_write(
    metadata: FeatureStoreMetadata,
    schema: FeatureGroupSchema,
    table: OfflineTable,
    write_id: str,
    *,
    online_pending: bool = False,
    check_log: bool = True,
) -> WriteRecord | None:
    """Return the record of ``write_id`` if that write already committed, else None.

    Looks in the registry, then (with ``check_log``) in the table's log, recording the commit
    from its commitInfo when the registry lacks it. The log check opens the table; writers
    skip it before committing because the commit itself checks the log under the commit lock
    (:attr:`~tauro_workbench.stores.offline_table.Commit.replayed`).

    Raises:
        MetadataError: If the registry cannot be read (or cannot take the missing record).
    """
    found = metadata.find_write(schema.name, schema.version, write_id)
    if found is not None or not check_log or table.committed_version(write_id) is None:
        return found
    reconcile_table(metadata, schema, table, online_pending=online_pending)
    return metadata.find_write(schema.name, schema.version, write_id)
