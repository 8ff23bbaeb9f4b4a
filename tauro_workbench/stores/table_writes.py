"""Writes of the materialized store: validate, gate on drift, commit once, record the commit.

:class:`TableWritesMixin` gives :class:`~tauro_workbench.stores.materialized.MaterializedFeatureStore`
its write verbs (:meth:`~TableWritesMixin.write_features`, :meth:`~TableWritesMixin.backfill`).
Each write validates the rows against the group's schema, runs the drift gate, commits them to
the group version's table in one transaction (:meth:`OfflineTable.commit`, carrying a
``write_id`` so a retry is a no-op), records the commit durably in the registry and then
publishes it (:func:`~tauro_workbench.stores.promotion.record_commit`: drift profile, events,
sync to online). It relies on the store's ``metadata``, ``config``, ``monitor`` and
``_table(schema)``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import polars as pl
from loguru import logger

from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureMaterializationError,
    FeatureStoreException,
    MetadataError,
    WriteNotRecordedError,
)
from tauro_workbench.frames import FrameLike
from tauro_workbench.registry import FeatureStoreMetadata, WriteRecord
from tauro_workbench.stores.backfill import ChunkBy, Source, load_window
from tauro_workbench.stores.offline_table import DATE_COLUMN, OfflineTable, TimeWindow, WriteMode
from tauro_workbench.stores.promotion import record_commit
from tauro_workbench.stores.reconcile import check_write_id, commit_info, find_committed_write

if TYPE_CHECKING:
    from tauro_workbench.config import FeatureStoreConfig
    from tauro_workbench.monitoring.monitor import WriteMonitor
    from tauro_workbench.schema import FeatureGroupSchema
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

__all__ = ["TableWritesMixin"]

_MODES = ("append", "overwrite", "merge")


class TableWritesMixin:
    """Append, overwrite, merge and backfill of a store's group tables."""

    metadata: FeatureStoreMetadata
    config: FeatureStoreConfig
    monitor: WriteMonitor
    _table: Callable[[FeatureGroupSchema], OfflineTable]  # the store's table of a group version

    def write_features(
        self,
        feature_group: str,
        data: FrameLike,
        mode: str = "append",
        backfill: bool = False,
        *,
        on_drift: str | None = None,
        write_id: str | None = None,
    ) -> WriteRecord:
        """Validate ``data`` and write it to the group's table in one transaction.

        Args:
            feature_group: A registered group (its latest version is written).
            data: Polars (eager or lazy), PyArrow or pandas rows.
            mode: ``append``; ``overwrite`` (atomic replace of the whole table); ``merge``
                (upsert on entity keys + event time; the last duplicate input row wins).
            backfill: Replace the event-time window ``[min, max]`` covered by ``data``
                (see :meth:`backfill`); needs ``mode="append"``.
            on_drift: Override of ``drift.on_drift`` for this write.
            write_id: Identity of the write, to make retries safe (a uuid when None): a write
                whose id already committed to this group version is a no-op that returns the
                original record (found in the registry or in the Delta log).

        Returns:
            The registry's record of the write (rows, table version, ``write_id``, ...).

        Raises:
            SchemaValidationError: If the data breaks the schema (nothing is written).
            DriftDetectedError: If the drift gate blocks the write (nothing is written).
            FeatureMaterializationError: If the table write failed (the table is unchanged);
                :class:`CommitConflictError` when other writers kept committing first.
            WriteNotRecordedError: The data IS committed but the registry could not record it
                (it is recorded from the Delta log later; retry with ``err.write_id``, a no-op).
            ConfigurationError: For an unknown mode or a malformed ``write_id``.

        Example:
            >>> store.write_features("user_features", df, mode="merge")  # doctest: +SKIP
        """
        if mode not in _MODES:
            raise ConfigurationError(f"unknown write mode {mode!r}; use one of {list(_MODES)}")
        schema = self.metadata.get_feature_group(feature_group)
        df = schema.validate(data)
        if not backfill:
            return self._write(schema, df, cast(WriteMode, mode), on_drift=on_drift, write_id=write_id)
        if mode != "append" or schema.timestamp_key is None:
            raise ConfigurationError(
                f"backfill=True replaces the event-time window of the data; it needs mode='append' "
                f"and a group with a timestamp_key (got mode={mode!r}, group {schema.name!r})"
            )
        if df.height == 0:
            return self._write(schema, df, "append", on_drift=on_drift, write_id=write_id)
        times = df.get_column(schema.timestamp_key)
        window = (schema.timestamp_key, times.min(), times.max() + timedelta(microseconds=1))  # type: ignore[operator]
        return self._write(schema, df, "backfill", window=window, on_drift=on_drift, write_id=write_id)  # type: ignore[arg-type]

    def backfill(
        self,
        feature_group: str,
        data_or_source: FrameLike | Source,
        *,
        start: datetime | str,
        end: datetime | str,
        chunk_by: ChunkBy | None = None,
        on_drift: str | None = None,
        write_id: str | None = None,
    ) -> WriteRecord:
        """Replace exactly the ``[start, end)`` event-time window of a group, in one transaction.

        Idempotent: running it twice leaves the same rows (only ``_tauro_seq`` differs).

        Args:
            feature_group: A registered group with a ``timestamp_key``.
            data_or_source: A frame (its rows inside the window are used) or a callable
                ``source(chunk_start, chunk_end)`` returning the rows of one chunk.
            start: Window start (inclusive); naive datetimes are UTC.
            end: Window end (exclusive).
            chunk_by: ``"day"``, ``"month"`` or ``"none"``; default by window length.
            on_drift: Override of ``drift.on_drift`` for this write.
            write_id: Identity of the write; a retry with the same id is a no-op (see
                :meth:`write_features`).

        Returns:
            The registry's record of the write (mode ``backfill``).

        Raises:
            PointInTimeError: For an empty window or a group without event time.
            SchemaValidationError: If a chunk breaks the schema (nothing is written).

        Example:
            >>> store.backfill("user_features", history, start="2024-01-01", end="2024-02-01")  # doctest: +SKIP
        """
        schema = self.metadata.get_feature_group(feature_group)
        df, lo, hi = load_window(schema, data_or_source, start, end, chunk_by=chunk_by)
        assert schema.timestamp_key is not None  # load_window checked it
        return self._write(
            schema,
            df,
            "backfill",
            window=(schema.timestamp_key, lo, hi),
            on_drift=on_drift,
            write_id=write_id,
        )

    def _write(
        self,
        schema: FeatureGroupSchema,
        df: pl.DataFrame,
        mode: WriteMode,
        *,
        window: TimeWindow | None = None,
        on_drift: str | None = None,
        write_id: str | None = None,
    ) -> WriteRecord:
        table = self._table(schema)
        pending = self.config.sync_to_online
        if write_id is None:  # a fresh id cannot have committed yet
            write_id = uuid.uuid4().hex
        else:
            check_write_id(write_id)  # the registry's record; the commit checks the log (under its lock)
            done = find_committed_write(self.metadata, schema, table, write_id, check_log=False)
            if done is not None:
                logger.info(
                    "write {} to {} v{} already committed: no-op", write_id, schema.name, schema.version
                )
                return done
        report = self.monitor.before_write(schema, df, on_drift=on_drift)
        started = time.perf_counter()
        keys = [*schema.entity_keys, *([schema.timestamp_key] if schema.timestamp_key else [])]
        committed = True
        try:
            frame = self._with_partition(schema, table, df)
            if mode == "merge":
                frame = frame.unique(subset=keys, keep="last", maintain_order=True)
            if mode == "append" and frame.height == 0:
                table_version, table_id, committed = table.version(), table.table_id(), False
            else:
                partition_by = [DATE_COLUMN] if DATE_COLUMN in frame.columns else []
                commit = table.commit(
                    mode,
                    frame,
                    merge_keys=keys,
                    window=window,
                    partition_by=partition_by,  # type: ignore[arg-type]
                    write_id=write_id,
                    info=commit_info(
                        schema.name,
                        schema.version,
                        mode=mode,
                        rows=df.height,
                        write_id=write_id,
                        window=window,
                    ),
                )
                if commit.replayed:  # a concurrent attempt with this id committed it first
                    done = find_committed_write(
                        self.metadata, schema, table, write_id, online_pending=pending
                    )
                    if done is not None:
                        return done
                table_version, table_id = commit.version, commit.table_id
        except FeatureStoreException:
            raise
        except Exception as err:
            raise FeatureMaterializationError(
                f"{mode} of {df.height} rows to {schema.name!r} v{schema.version} at {table.uri!r} failed "
                f"(nothing was committed): {err}"
            ) from err
        seconds = time.perf_counter() - started
        details: dict[str, Any] = {"format": table.format, "seconds": round(seconds, 6), "write_id": write_id}
        if table_id is not None:
            details["table_id"] = table_id
        if not committed:
            details["committed"] = False
        if window is not None:
            details["window"] = [window[1].isoformat(), window[2].isoformat()]
        if committed:
            self._record_durably(schema, mode, df.height, table_version, details)
        return record_commit(
            cast("MaterializedFeatureStore", self),
            schema,
            mode=mode,
            rows=df.height,
            table_version=table_version,
            details=details,
            frame=df,
            report=report,
        )

    def _record_durably(
        self,
        schema: FeatureGroupSchema,
        mode: str,
        rows: int,
        table_version: int | None,
        details: dict[str, Any],
    ) -> None:
        """Record a commit, or raise :class:`WriteNotRecordedError` saying the data IS committed.

        The registry retries a busy database per the retry policy before giving up. The record
        made here is found again (by ``write_id``) by the ``record_commit`` that follows.
        """
        try:
            self.metadata.record_write(
                schema.name,
                schema.version,
                mode=mode,
                rows=rows,
                table_version=table_version,
                details=details,
            )
        except MetadataError as err:
            write_id = str(details["write_id"])
            raise WriteNotRecordedError(
                f"The {mode} of {rows} rows to {schema.name!r} v{schema.version} IS committed (table "
                f"version {table_version}, write_id {write_id!r}) but the registry could not record it: "
                f"{err}. The commit is durable and is recorded from the Delta log when the group is "
                "next opened or its history read.",
                group=schema.name,
                version=schema.version,
                table_version=int(table_version or 0),
                write_id=write_id,
            ) from err

    def _with_partition(
        self, schema: FeatureGroupSchema, table: OfflineTable, df: pl.DataFrame
    ) -> pl.DataFrame:
        """Add ``_tauro_date`` when the table is (or will be created) partitioned by date."""
        if schema.timestamp_key is None:
            return df
        existing = table.scan(None)
        partitioned = (
            DATE_COLUMN in existing.collect_schema()
            if existing is not None
            else self.config.materialized.partition_by_date
        )
        if not partitioned:
            return df
        return df.with_columns(pl.col(schema.timestamp_key).dt.date().alias(DATE_COLUMN))
