"""Offline tables: one Delta (or Parquet) table per feature group version, and its hidden columns.

Every write goes through :meth:`OfflineTable.commit`, which numbers the rows it writes with the
hidden column ``_tauro_seq`` (Int64)::

    _tauro_seq = (write number << 32) | row index within the write

The write number of a Delta write is the table version its commit creates: the commit is made
with ``max_commit_retries=0``, so it either lands at exactly ``read version + 1`` or fails with a
conflict, in which case the whole write (with new numbers) is retried per the store's
:class:`~tauro_workbench.retry.RetryPolicy`. Numbers therefore grow with commit order across
threads and processes, and a greater ``_tauro_seq`` always means "written later" (within one
write, later input rows get greater numbers). Version 0 of every Delta table is its empty
creation commit, so data versions start at 1. At most 2**32 rows per write.

Commit identity: every Delta commit carries its write in the commitInfo custom metadata
(``tauro.write_id``, ``tauro.group``, ``tauro.version``, ``tauro.mode``, ``tauro.rows``) and an
app transaction ``tauro-write:<write_id>`` whose version is the table version committed, so a
write can be found in the log by its id (:meth:`DeltaOfflineTable.committed_version`) and the
registry's write history rebuilt from the log (:mod:`tauro_workbench.stores.reconcile`).
Commits of one table are serialized by a cross-process lock (:mod:`~.commit_lock`); conflicts
with other engines' writers are retried per the retry policy, then raise
:class:`~tauro_workbench.exceptions.CommitConflictError`.

With ``partition_by_date``, the hidden column ``_tauro_date`` (Date of the event time) is the
Delta partition column. Hidden columns start with ``_tauro``, a prefix user columns cannot use.

Reads: a Delta version is read by replaying its log (:mod:`~.delta_log`, deltalake for what that
does not support) into a snapshot: its files, schema, row count and table id. A table keeps up
to 8 snapshots and reuses them while the log says they are current: a read of the latest
version costs a ``stat`` of the next log entry instead of a log replay, and a commit by any
process (which creates that entry) makes the next read replay the new version. A scan returned
earlier keeps reading the version it was made at.

Parquet format: a folder of ``part-<write number>-<uuid>.parquet`` files. A new table is
prepared in a temporary folder (commit markers and schema file) and renamed into place, so it
appears complete or not at all. Write numbers are allocated by creating
``_tauro_commits/<number>`` exclusively (safe across processes), so appends from several
processes lose nothing. Differences from Delta: no time travel (only the latest
state is readable); overwrite, merge and backfill rewrite the whole folder and swap it in with two
renames (readers in between see no table; do not run them concurrently with other writers).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
from loguru import logger

from tauro_workbench.exceptions import (
    CommitConflictError,
    FeatureMaterializationError,
    PointInTimeError,
    TableVersionUnavailableError,
)
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.stores.commit_lock import commit_lock, ensure_folder
from tauro_workbench.stores.delta_log import (
    LogSnapshot,
    UnsupportedLog,
    latest_version,
    read_commits,
    read_snapshot,
)

__all__ = [
    "DATE_COLUMN",
    "HIDDEN_COLUMNS",
    "SEQ_COLUMN",
    "Commit",
    "DeltaOfflineTable",
    "OfflineTable",
    "ParquetOfflineTable",
    "TimeWindow",
    "open_offline_table",
]

SEQ_COLUMN = "_tauro_seq"
DATE_COLUMN = "_tauro_date"
HIDDEN_COLUMNS = (SEQ_COLUMN, DATE_COLUMN)
_ROW_BITS = 32

WriteMode = Literal["append", "overwrite", "merge", "backfill"]
TimeWindow = tuple[str, datetime, datetime]  # (event-time column, start, end): [start, end)
AsOf = int | datetime | None
WRITE_APP_PREFIX = "tauro-write:"
_SNAPSHOTS = 8  # opened Delta table versions kept per table


@dataclass(frozen=True)
class Commit:
    """The outcome of :meth:`OfflineTable.commit`.

    Attributes:
        version: The table version holding the write.
        replayed: True when the write id was already committed (nothing new was written).
        table_id: The Delta table's id (new for every created table); None for Parquet.
    """

    version: int
    replayed: bool = False
    table_id: str | None = None


def with_sequence(frame: pl.DataFrame, write_number: int) -> pl.DataFrame:
    """Return ``frame`` with ``_tauro_seq`` set for write ``write_number`` (see module docs)."""
    if frame.height >= 1 << _ROW_BITS:
        raise FeatureMaterializationError(
            f"a single write holds at most {1 << _ROW_BITS} rows, got {frame.height}",
            hint="Split the data into several writes.",
        )
    base = write_number << _ROW_BITS
    return frame.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + base).alias(SEQ_COLUMN))


class OfflineTable(ABC):
    """One feature group version's table: versioned reads and sequenced, atomic writes.

    Args:
        path: Folder of the table.
        retry: Policy for commit conflicts (another writer committed first).
    """

    format: str = ""

    def __init__(self, path: Path, *, retry: RetryPolicy, lock_timeout_seconds: float = 30.0) -> None:
        self.path = path
        self.retry = retry
        self.lock_timeout_seconds = lock_timeout_seconds

    @property
    def uri(self) -> str:
        """Absolute path of the table folder."""
        return str(self.path.resolve())

    @abstractmethod
    def exists(self) -> bool:
        """True when the table has been created."""

    @abstractmethod
    def version(self) -> int | None:
        """The latest table version (None when the table does not exist)."""

    @abstractmethod
    def resolve_version(self, as_of: AsOf) -> int | None:
        """Return the table version read for ``as_of`` (a version number, a datetime, or None: latest)."""

    @abstractmethod
    def scan(self, version: int | None) -> pl.LazyFrame | None:
        """Return the table at ``version`` lazily (None when the table does not exist)."""

    @abstractmethod
    def commit(
        self,
        mode: WriteMode,
        frame: pl.DataFrame,
        *,
        merge_keys: Sequence[str] = (),
        window: TimeWindow | None = None,
        partition_by: Sequence[str] = (),
        write_id: str | None = None,
        info: Mapping[str, str] | None = None,
    ) -> Commit:
        """Write ``frame`` (without hidden ``_tauro_seq``) in one transaction.

        Args:
            mode: ``append``; ``overwrite`` (replace everything); ``merge`` (upsert on
                ``merge_keys``); ``backfill`` (replace the rows of ``window``).
            frame: Validated rows, with ``_tauro_date`` already added when partitioned.
            merge_keys: Columns identifying a row for ``merge``.
            window: Event-time window replaced by ``backfill``.
            partition_by: Partition columns used when the table is created.
            write_id: Identity of the write; a write id already in the log is not written
                again (Delta) and the commit holding it is returned with ``replayed=True``.
            info: Extra commit metadata (Delta commitInfo; text values).

        Raises:
            CommitConflictError: If other writers committed first on every attempt.
        """

    def committed_version(self, write_id: str) -> int | None:
        """Return the table version that committed ``write_id`` (None: not in the log)."""
        return None

    def row_count(self, version: int | None) -> int | None:
        """Return the rows at ``version`` when the table's metadata tells (None: unknown)."""
        return None

    def table_id(self) -> str | None:
        """Return the id of the table (Delta metadata id; None for Parquet or no table)."""
        return None

    @abstractmethod
    def history(self) -> list[dict[str, object]]:
        """Return the table's commits, newest first (version, timestamp, operation, ...)."""

    def vacuum(self, *, retention_hours: int = 168, dry_run: bool = True) -> list[str]:
        """Delete files no longer referenced (Delta only); return them."""
        return []


@dataclass(frozen=True)
class _DeltaRsSnapshot(LogSnapshot):
    """A version opened with deltalake, for logs :mod:`~.delta_log` does not replay."""

    table: object = None

    @classmethod
    def of(cls, table) -> _DeltaRsSnapshot:  # type: ignore[no-untyped-def]
        """Describe an opened deltalake table."""
        version = int(table.version())
        # Polars reads the (Arrow) add actions: pyarrow.compute would cost ~40 MB to import.
        records = pl.DataFrame(table.get_add_actions(flatten=True)).get_column("num_records")
        return cls(
            version=version,
            table_id=str(table.metadata().id),
            schema=pl.scan_delta(table, version=version).collect_schema(),
            partition_columns=tuple(table.metadata().partition_columns),
            files=tuple(table.file_uris()),
            num_records=None if records.null_count() else int(records.sum()),  # no statistics: unknown
            table=table,
        )

    def scan(self) -> pl.LazyFrame:
        """Scan through Polars' Delta reader (deletion vectors, column mapping)."""
        return pl.scan_delta(self.table, version=self.version)  # type: ignore[arg-type]


class DeltaOfflineTable(OfflineTable):
    """A Delta Lake table written with deltalake (delta-rs)."""

    format = "delta"

    def __init__(self, path: Path, *, retry: RetryPolicy, lock_timeout_seconds: float = 30.0) -> None:
        super().__init__(path, retry=retry, lock_timeout_seconds=lock_timeout_seconds)
        self._uri = super().uri
        self._log = os.path.join(self._uri, "_delta_log")
        # version -> (opened table at that version, identity of its log entry); never mutated
        # once stored, because a lazy scan handed out earlier keeps reading it
        self._snapshots: dict[int, tuple[LogSnapshot, tuple[int, int, int]]] = {}
        self._latest: int | None = None
        self._guard = threading.Lock()  # readers on several threads share the snapshots

    @property
    def uri(self) -> str:
        """Absolute path of the table folder."""
        return self._uri

    def _entry(self, version: int) -> tuple[int, int, int] | None:
        """Identity (inode, size, mtime) of the log entry of ``version`` (None: no such entry)."""
        try:
            found = os.stat(os.path.join(self._log, f"{version:020d}.json"))
        except OSError:
            return None
        return (found.st_ino, found.st_size, found.st_mtime_ns)

    def _snapshot(self, version: int | None) -> LogSnapshot | None:
        """Return the table at ``version`` (None: latest), reusing one read before.

        A cached snapshot is served only while its log entry is the same file and, for the
        latest, no next entry exists: one or two ``stat`` calls instead of a log replay. A
        commit by this or any other process creates the next entry, and a table deleted and
        created again has new entries, so neither is ever missed.
        """
        latest = self._latest
        if version is None and latest is not None:
            held = self._snapshots.get(latest)
            if held is not None and self._entry(latest + 1) is None and self._entry(latest) == held[1]:
                return held[0]
        elif version is not None:
            held = self._snapshots.get(version)
            if held is not None and self._entry(version) == held[1]:
                return held[0]
        snapshot = self._read(version)
        with self._guard:
            if snapshot is None:
                self._snapshots.clear()
                self._latest = None
                return None
            entry = self._entry(snapshot.version)
            if entry is not None:
                if len(self._snapshots) >= _SNAPSHOTS:
                    self._snapshots.pop(next(iter(self._snapshots)))
                self._snapshots[snapshot.version] = (snapshot, entry)
                if version is None:
                    self._latest = snapshot.version
        return snapshot

    def _read(self, version: int | None) -> LogSnapshot | None:
        """Replay the log (:mod:`~.delta_log`); what it does not support is opened with deltalake."""
        try:
            return read_snapshot(self.uri, version)
        except UnsupportedLog as reason:
            logger.debug("{}: reading version {} with deltalake ({})", self.uri, version, reason)
        table = self._open(version)
        return None if table is None else _DeltaRsSnapshot.of(table)

    def _open(self, version: AsOf = None):  # type: ignore[no-untyped-def]
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(self.uri):
            return None
        table = DeltaTable(self.uri)
        if version is not None:
            try:
                table.load_as_version(version)
            except Exception as err:  # deltalake raises several untyped errors here
                raise PointInTimeError(
                    f"table {self.uri!r} has no version for as_of={version!r}: {err}",
                    hint="List the versions with store.list_table_versions(group).",
                ) from err
        return table

    def exists(self) -> bool:
        try:
            return latest_version(self.uri) is not None
        except UnsupportedLog:
            from deltalake import DeltaTable

            return bool(DeltaTable.is_deltatable(self.uri))

    def version(self) -> int | None:
        snapshot = self._snapshot(None)
        return None if snapshot is None else snapshot.version

    def resolve_version(self, as_of: AsOf) -> int | None:
        if isinstance(as_of, bool) or (isinstance(as_of, int) and as_of < 0):
            raise PointInTimeError(f"as_of must be a table version >= 0 or a datetime, got {as_of!r}")
        if isinstance(as_of, datetime):  # resolved against the log each time (later commits may change it)
            table = self._open(as_of)
            if table is None:
                return None
            as_of = int(table.version())
        snapshot = self._snapshot(as_of)
        if snapshot is None:
            return None
        if as_of is not None:  # time travel: the version's files may have been vacuumed
            missing = sum(1 for path in snapshot.files if path.startswith("/") and not os.path.exists(path))
            if missing:
                raise TableVersionUnavailableError(self.uri, snapshot.version, missing)
        return snapshot.version

    def scan(self, version: int | None) -> pl.LazyFrame | None:
        snapshot = self._snapshot(version)
        # The snapshot's files are scanned as they are: every collect reads the same version.
        return None if snapshot is None else snapshot.scan()

    def table_id(self) -> str | None:
        snapshot = self._snapshot(None)
        return None if snapshot is None else snapshot.table_id

    def row_count(self, version: int | None) -> int | None:
        snapshot = self._snapshot(version)
        return None if snapshot is None else snapshot.num_records

    def committed_version(self, write_id: str) -> int | None:
        table = self._open()
        if table is None:
            return None
        found = table.transaction_version(WRITE_APP_PREFIX + write_id)
        return None if found is None else int(found)

    def _create(self, schema: pa.Schema, partition_by: Sequence[str]) -> None:
        """Create the table (version 0, no rows) unless it exists; call under the commit lock."""
        from deltalake import DeltaTable

        ensure_folder(self.path)
        if DeltaTable.is_deltatable(self.uri):
            return
        try:
            DeltaTable.create(self.uri, schema, partition_by=list(partition_by) or None, mode="ignore")
        except Exception as err:
            # another engine's writer may have created it at the same instant; that is fine
            if not DeltaTable.is_deltatable(self.uri):
                raise FeatureMaterializationError(f"cannot create Delta table {self.uri!r}: {err}") from err

    def commit(
        self,
        mode: WriteMode,
        frame: pl.DataFrame,
        *,
        merge_keys: Sequence[str] = (),
        window: TimeWindow | None = None,
        partition_by: Sequence[str] = (),
        write_id: str | None = None,
        info: Mapping[str, str] | None = None,
    ) -> Commit:
        from deltalake import CommitProperties, Transaction, write_deltalake
        from deltalake.exceptions import CommitFailedError

        def attempt() -> Commit:
            if not self.exists():
                self._create(with_sequence(frame.clear(), 0).to_arrow().schema, partition_by)
            table = self._open()
            table_id = str(table.metadata().id)
            if write_id is not None:
                done = table.transaction_version(WRITE_APP_PREFIX + write_id)
                if done is not None:
                    return Commit(int(done), replayed=True, table_id=table_id)
            number = int(table.version()) + 1
            data = with_sequence(frame, number).to_arrow()
            transactions = []
            if write_id is not None:
                now_ms = int(datetime.now().timestamp() * 1000)
                transactions.append(Transaction(WRITE_APP_PREFIX + write_id, number, now_ms))
            props = CommitProperties(
                max_commit_retries=0,
                custom_metadata={**(info or {}), "tauro.mode": mode},
                app_transactions=transactions or None,
            )
            if mode == "merge":
                on = " AND ".join(f't."{k}" = s."{k}"' for k in merge_keys)
                table.merge(
                    data, predicate=on, source_alias="s", target_alias="t", commit_properties=props
                ).when_matched_update_all().when_not_matched_insert_all().execute()
            elif mode == "backfill":
                assert window is not None
                write_deltalake(
                    table,
                    data,
                    mode="overwrite",
                    predicate=_window_predicate(window),
                    commit_properties=props,
                )
            else:
                write_deltalake(table, data, mode=mode, commit_properties=props)
            return Commit(number, table_id=table_id)

        def locked() -> Commit:
            with commit_lock(self.path, timeout_seconds=self.lock_timeout_seconds):
                return attempt()

        try:
            return self.retry.call(
                locked,
                what=f"{mode} commit to {self.uri}",
                is_transient=lambda err: isinstance(err, CommitFailedError),
            )
        except CommitFailedError as err:
            attempts = self.retry.max_retries + 1
            raise CommitConflictError(
                f"{mode} to {self.uri!r} lost the commit race {attempts} time(s): another writer (not "
                f"holding this library's commit lock, e.g. another engine) committed the table version "
                f"this write needed first. Nothing was committed. Last conflict: {err}",
                uri=self.uri,
                attempts=attempts,
            ) from err

    def log_commits(self, after: int) -> list[dict[str, object]]:
        """Return the commits with a version above ``after``, oldest first (commitInfo fields)."""
        snapshot = self._snapshot(None)
        if snapshot is None or snapshot.version <= after:
            return []
        return read_commits(self.uri, after, snapshot.version)

    def history(self) -> list[dict[str, object]]:
        table = self._open()
        return [] if table is None else list(table.history())

    def vacuum(self, *, retention_hours: int = 168, dry_run: bool = True) -> list[str]:
        table = self._open()
        if table is None:
            return []
        return list(
            table.vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False)
        )


def _window_predicate(window: TimeWindow) -> str:
    # delta-rs predicates have no bind parameters; the column is a validated identifier and the
    # bounds are datetimes formatted here, never user text
    column, start, end = window
    return f"\"{column}\" >= '{start.isoformat()}' AND \"{column}\" < '{end.isoformat()}'"


class ParquetOfflineTable(OfflineTable):
    """A folder of Parquet files with sequenced writes (see the module docs for its limits)."""

    format = "parquet"

    @property
    def _commits(self) -> Path:
        return self.path / "_tauro_commits"

    def exists(self) -> bool:
        return self._commits.is_dir()

    def version(self) -> int | None:
        if not self.exists():
            return None
        numbers = [int(p.name) for p in self._commits.iterdir() if p.name.isdigit()]
        return max(numbers, default=0)

    def resolve_version(self, as_of: AsOf) -> int | None:
        current = self.version()
        if as_of is not None and as_of != current:
            raise PointInTimeError(
                f"Parquet table {self.uri!r} has no time travel (asked as_of={as_of!r}, latest is {current})",
                hint='Use storage_format="delta" to read earlier versions.',
            )
        return current

    def scan(self, version: int | None) -> pl.LazyFrame | None:
        self.resolve_version(version)
        files = sorted(str(p) for p in self.path.glob("*.parquet"))
        if not self.exists():
            return None
        if not files:
            return pl.read_parquet(self.path / "_tauro_schema.parquet").lazy()
        return pl.scan_parquet(files)

    def _publish(self, data: pl.DataFrame) -> None:
        """Create the table atomically: commit markers and schema file appear together."""
        if self.exists():
            return
        ensure_folder(self.path.parent)
        staging = self.path.with_name(f"{self.path.name}.new-{uuid.uuid4().hex}")
        try:
            (staging / "_tauro_commits").mkdir(parents=True)
            data.clear().write_parquet(staging / "_tauro_schema.parquet")
            try:
                os.rename(staging, self.path)  # replaces an empty folder; fails on a live table
            except OSError:
                if not self.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _allocate(self) -> int:
        """Claim the next write number by creating its commit marker exclusively."""
        number = (self.version() or 0) + 1
        while True:
            try:
                fd = os.open(self._commits / f"{number:020d}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                number += 1
                continue
            os.close(fd)
            return number

    def commit(
        self,
        mode: WriteMode,
        frame: pl.DataFrame,
        *,
        merge_keys: Sequence[str] = (),
        window: TimeWindow | None = None,
        partition_by: Sequence[str] = (),
        write_id: str | None = None,
        info: Mapping[str, str] | None = None,
    ) -> Commit:
        self._publish(with_sequence(frame.clear(), 0))
        number = self._allocate()
        data = with_sequence(frame, number)
        if mode == "append":
            self._write_file(self.path, data, number)
            return Commit(number)
        current = self.scan(None)
        old = current.collect() if current is not None else data.clear()
        if mode == "overwrite":
            rows = data
        elif mode == "merge":
            kept = old.join(data.select(merge_keys), on=list(merge_keys), how="anti", nulls_equal=True)
            rows = pl.concat([kept, data], how="vertical_relaxed")
        else:
            assert window is not None
            column, start, end = window
            outside = old.filter((pl.col(column) < start) | (pl.col(column) >= end))
            rows = pl.concat([outside, data], how="vertical_relaxed")
        self._swap(rows, number)
        return Commit(number)

    def _write_file(self, folder: Path, data: pl.DataFrame, number: int) -> None:
        if data.height == 0:
            return
        final = folder / f"part-{number:020d}-{uuid.uuid4().hex}.parquet"
        temporary = final.with_suffix(".tmp")
        data.write_parquet(temporary)
        os.replace(temporary, final)  # atomic: readers never see a partial file

    def _swap(self, rows: pl.DataFrame, number: int) -> None:
        staging = self.path.with_name(f"{self.path.name}.tmp-{uuid.uuid4().hex}")
        retired = self.path.with_name(f"{self.path.name}.old-{uuid.uuid4().hex}")
        staging.mkdir(parents=True)
        shutil.copytree(self._commits, staging / "_tauro_commits")
        shutil.copy2(self.path / "_tauro_schema.parquet", staging / "_tauro_schema.parquet")
        self._write_file(staging, rows, number)
        os.replace(self.path, retired)
        os.replace(staging, self.path)
        shutil.rmtree(retired, ignore_errors=True)
        logger.debug("swapped in a rewritten Parquet table at {}", self.uri)

    def history(self) -> list[dict[str, object]]:
        if not self.exists():
            return []
        numbers = sorted((int(p.name) for p in self._commits.iterdir() if p.name.isdigit()), reverse=True)
        return [{"version": n} for n in numbers]


def open_offline_table(
    path: Path, format: str, *, retry: RetryPolicy, lock_timeout_seconds: float = 30.0
) -> OfflineTable:
    """Return the table of ``format`` (``delta`` or ``parquet``) at ``path``."""
    factories: dict[str, Callable[..., OfflineTable]] = {
        "delta": DeltaOfflineTable,
        "parquet": ParquetOfflineTable,
    }
    if format not in factories:
        raise FeatureMaterializationError(
            f"unknown storage format {format!r}", hint=f"Use one of {sorted(factories)}."
        )
    return factories[format](path, retry=retry, lock_timeout_seconds=lock_timeout_seconds)
