"""Write history and events: the append-only parts of the registry.

Every data write to a feature group is one row of ``writes`` (version, mode, rows, Delta table
version, time and free-form JSON details such as the drift report and the online sync state);
every published event is one row of ``events``, with ids increasing in commit order. Times are
stored as fixed-width UTC text, so text order is time order.

A write's identity lives in its details: ``write_id`` (the caller's retry key, also in the Delta
commit), ``table_id`` (the Delta table's id) and, for writes that committed nothing (an empty
append), ``committed: false``. Recording a committed write is idempotent on those keys (see
:meth:`HistoryMixin.record_write`), which is what lets the store rebuild missing records from
the Delta log (:mod:`tauro_workbench.stores.reconcile`) without ever duplicating one. Records
of deleted groups keep ``deleted_at`` and are never matched again.

Example:
    >>> from tauro_workbench.registry import FeatureStoreMetadata
    >>> metadata = FeatureStoreMetadata()
    >>> metadata.record_write("users", 1, mode="append", rows=3).rows
    3
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tauro_workbench.exceptions import MetadataError, RegistryCorruptionError
from tauro_workbench.sqlite_database import SQLiteDatabase, decode_json

__all__ = ["EventRecord", "HistoryMixin", "WriteRecord", "now_utc", "stamp"]


def now_utc() -> datetime:
    return datetime.now(UTC)


def _to_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; naive datetimes are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stamp(value: datetime) -> str:
    # One fixed-width UTC format, so text order is time order (MAX / ORDER BY on the column).
    return _to_utc(value).isoformat(timespec="microseconds")


def _parse_time(text: str) -> datetime:
    return _to_utc(datetime.fromisoformat(text))


@dataclass(frozen=True)
class WriteRecord:
    """One data write to a feature group, as recorded in the registry."""

    id: int
    group: str
    version: int
    mode: str
    rows: int
    table_version: int | None
    written_at: datetime
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def write_id(self) -> str | None:
        """The caller-visible identity of the write (``details["write_id"]``), if any."""
        value = self.details.get("write_id")
        return None if value is None else str(value)

    def __repr__(self) -> str:
        try:
            drift = self.details.get("drift")
            verdict = f", drift={drift.get('verdict')!r}" if isinstance(drift, dict) else ""
            return (
                f"WriteRecord(id={self.id}, group={self.group!r}, version={self.version}, mode={self.mode!r}, "
                f"rows={self.rows}, table_version={self.table_version}, "
                f"written_at={self.written_at.isoformat()!r}{verdict})"
            )
        except Exception:  # a repr must never raise
            return object.__repr__(self)

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


@dataclass(frozen=True)
class EventRecord:
    """One persisted event."""

    id: int
    kind: str
    group: str | None
    payload: dict[str, Any]
    created_at: datetime


def _write_record(row: sqlite3.Row, location: str) -> WriteRecord:
    where = f"writes id={row['id']}"
    try:
        return WriteRecord(
            int(row["id"]),
            row["group_name"],
            int(row["version"]),
            row["mode"],
            int(row["rows"]),
            row["table_version"],
            _parse_time(row["written_at"]),
            decode_json(row["details"], location=location, row=where),
        )
    except (TypeError, ValueError) as err:
        if isinstance(err, RegistryCorruptionError):
            raise
        raise RegistryCorruptionError(location, where, str(err)) from err


def _find_committed(
    conn: sqlite3.Connection, group: str, version: int, details: dict[str, Any], table_version: int | None
) -> sqlite3.Row | None:
    """Return the live record holding ``details``' write id or table commit (see ``record_write``)."""
    write_id = details.get("write_id")
    table_id = details.get("table_id")
    live = (
        "SELECT * FROM writes WHERE group_name=? AND version=? "
        "AND json_extract(details, '$.deleted_at') IS NULL AND {} ORDER BY id LIMIT 1"
    )
    if write_id is not None:
        row = conn.execute(
            live.format("json_extract(details, '$.write_id') = ?"), (group, version, str(write_id))
        ).fetchone()
        if row is not None:
            return row  # type: ignore[no-any-return]
    if table_version is None or details.get("committed") is False:
        return None
    if table_id is None:  # a writer that does not know the table id (another engine's path):
        # only a record that reconciliation made for this table version is the same commit
        return conn.execute(  # type: ignore[no-any-return]
            live.format("table_version = ? AND json_extract(details, '$.reconciled') = 1"),
            (group, version, table_version),
        ).fetchone()
    # records made before commits carried a table id (or by another engine's path) match by version
    return conn.execute(  # type: ignore[no-any-return]
        live.format(
            "table_version = ? AND IFNULL(json_extract(details, '$.committed'), 1) != 0 "
            "AND IFNULL(json_extract(details, '$.table_id'), ?) = ?"
        ),
        (group, version, table_version, str(table_id), str(table_id)),
    ).fetchone()


class HistoryMixin:
    """Write history and events of :class:`~tauro_workbench.registry.FeatureStoreMetadata`."""

    database: SQLiteDatabase

    # -- write history --------------------------------------------------------------------
    def record_write(
        self,
        group: str,
        version: int,
        *,
        mode: str,
        rows: int,
        table_version: int | None = None,
        details: dict[str, Any] | None = None,
        written_at: datetime | None = None,
    ) -> WriteRecord:
        """Record a data write to ``group`` v``version`` and return the record (with its id).

        ``written_at`` defaults to now; naive datetimes are taken as UTC. ``details`` is stored
        as JSON (values JSON cannot hold are stored as their ``str``).

        Idempotent for committed writes: when ``details`` holds a ``write_id``, or a ``table_id``
        (the Delta table's id) with ``table_version``, and a live record of the same group
        version already has that write id or that table commit, no row is added: the existing
        record is returned (with keys of ``details`` it lacked merged in). A ``table_version``
        without a table id matches only a record that reconciliation made for that version. The check and the
        insert are one transaction, so a writer and a reconciliation racing to record the same
        commit (threads or processes) leave exactly one record. Records of deleted groups
        (``details["deleted_at"]``) and of writes that committed nothing
        (``details["committed"] is False``) never match.

        Example:
            >>> metadata.record_write("users", 1, mode="append", rows=100)  # doctest: +SKIP
        """
        when = _to_utc(written_at or now_utc())
        text = json.dumps(details or {}, default=str)
        given = json.loads(text)

        def insert(conn: sqlite3.Connection) -> int | sqlite3.Row:
            existing = _find_committed(conn, group, version, given, table_version)
            if existing is not None:
                stored = json.loads(existing["details"])
                # a writer completing a commit that reconciliation recorded first adds its details
                merged = {**given, **stored} if stored.get("reconciled") else stored
                if merged != stored:
                    conn.execute(
                        "UPDATE writes SET details=? WHERE id=?",
                        (json.dumps(merged, default=str), existing["id"]),
                    )
                return conn.execute("SELECT * FROM writes WHERE id=?", (existing["id"],)).fetchone()  # type: ignore[no-any-return]
            cur = conn.execute(
                "INSERT INTO writes (group_name, version, mode, rows, table_version, written_at, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (group, version, mode, rows, table_version, stamp(when), text),
            )
            return int(cur.lastrowid or 0)

        inserted = self.database.run(insert, what=f"record write to {group}")
        if isinstance(inserted, sqlite3.Row):
            return _write_record(inserted, self.database.location)
        return WriteRecord(inserted, group, version, mode, rows, table_version, when, given)

    def find_write(self, group: str, version: int, write_id: str) -> WriteRecord | None:
        """Return the live record of ``write_id`` for ``group`` v``version``, or None.

        Example:
            >>> metadata.find_write("users", 1, "nightly-2024-05-01")  # doctest: +SKIP
        """
        row = self.database.run(
            lambda c: _find_committed(c, group, version, {"write_id": write_id}, None),
            what=f"find write {write_id} of {group}",
            write=False,
        )
        return None if row is None else _write_record(row, self.database.location)

    def update_write(self, write_id: int, details: dict[str, Any]) -> None:
        """Merge ``details`` into the details of write ``write_id``.

        Raises:
            MetadataError: If no write has that id.
        """

        def update(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT details FROM writes WHERE id=?", (write_id,)).fetchone()
            if row is None:
                raise MetadataError(
                    f"No write with id {write_id} in the registry {self.database.location!r}.",
                    hint="Use the id of a WriteRecord returned by record_write or list_writes.",
                )
            merged = {
                **decode_json(row["details"], location=self.database.location, row=f"writes id={write_id}"),
                **details,
            }
            conn.execute(
                "UPDATE writes SET details=? WHERE id=?", (json.dumps(merged, default=str), write_id)
            )

        self.database.run(update, what=f"update write {write_id}")

    def list_writes(
        self, group: str, version: int | None = None, *, limit: int | None = None
    ) -> list[WriteRecord]:
        """Return the writes of ``group`` (one version, or all), oldest first (newest ``limit``)."""
        sql = "SELECT * FROM writes WHERE group_name=?"
        args: list[Any] = [group]
        if version is not None:
            sql += " AND version=?"
            args.append(version)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self.database.run(
            lambda c: c.execute(sql, args).fetchall(), what=f"list writes of {group}", write=False
        )
        return [_write_record(r, self.database.location) for r in reversed(rows)]

    def get_last_updated(self, group_name: str, version: int | None = None) -> datetime | None:
        """Return when data was last written to the group (UTC), or None if never.

        This is the latest ``written_at`` of the write history, not the registration time.
        """
        sql = "SELECT MAX(written_at) FROM writes WHERE group_name=?"
        args: list[Any] = [group_name]
        if version is not None:
            sql += " AND version=?"
            args.append(version)
        row = self.database.run(
            lambda c: c.execute(sql, args).fetchone(), what=f"last update of {group_name}", write=False
        )
        return None if row[0] is None else _parse_time(row[0])

    # -- events ---------------------------------------------------------------------------
    def record_event(self, kind: str, payload: dict[str, Any], *, group: str | None = None) -> EventRecord:
        """Persist an event and return it with its id (ids increase in commit order)."""
        when = now_utc()
        text = json.dumps(payload, default=str)

        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO events (kind, group_name, payload, created_at) VALUES (?, ?, ?, ?)",
                (kind, group, text, stamp(when)),
            )
            return int(cur.lastrowid or 0)

        event_id = self.database.run(insert, what=f"record event {kind}")
        return EventRecord(event_id, kind, group, json.loads(text), when)

    def list_events(
        self,
        *,
        kind: str | None = None,
        group: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Return persisted events in id order, optionally filtered (``after_id`` to poll)."""
        sql = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        if group is not None:
            sql += " AND group_name=?"
            args.append(group)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self.database.run(lambda c: c.execute(sql, args).fetchall(), what="list events", write=False)
        return [
            EventRecord(
                int(r["id"]),
                r["kind"],
                r["group_name"],
                decode_json(r["payload"], location=self.database.location, row=f"events id={r['id']}"),
                _parse_time(r["created_at"]),
            )
            for r in rows
        ]
