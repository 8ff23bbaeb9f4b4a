"""The metadata registry: :class:`FeatureStoreMetadata`.

A SQLite database (WAL mode) at ``<storage_path>/registry.db`` holding versioned feature-group
schemas, lineage (a DAG), the history of data writes, events, and named documents (source
definitions, virtual-feature SQL, sync state). Safe across threads (one connection per thread,
an ``RLock`` honouring ``lock_timeout_seconds``) and across processes (every change is one
``BEGIN IMMEDIATE`` transaction); transient "database is locked" errors are retried with
exponential backoff; schema reads are cached for ``metadata_cache_ttl_seconds``.

Example:
    >>> metadata = FeatureStoreMetadata()          # in memory, for quick use
    >>> metadata.list_feature_groups()
    []
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.exceptions import (
    FeatureGroupNotFoundError,
    FeatureRegistryError,
    LineageCycleError,
    MetadataError,
)
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema

__all__ = ["EventRecord", "FeatureStoreMetadata", "WriteRecord"]

T = TypeVar("T")

_DDL = """
CREATE TABLE IF NOT EXISTS feature_groups (
    name TEXT NOT NULL, version INTEGER NOT NULL, schema_json TEXT NOT NULL,
    fingerprint TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS lineage (
    upstream TEXT NOT NULL, downstream TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (upstream, downstream));
CREATE INDEX IF NOT EXISTS lineage_downstream ON lineage (downstream);
CREATE TABLE IF NOT EXISTS writes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, group_name TEXT NOT NULL, version INTEGER NOT NULL,
    mode TEXT NOT NULL, rows INTEGER NOT NULL, table_version INTEGER, written_at TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS writes_group ON writes (group_name, version, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, group_name TEXT,
    payload TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, id);
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name));
"""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


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


@dataclass(frozen=True)
class EventRecord:
    """One persisted event."""

    id: int
    kind: str
    group: str | None
    payload: dict[str, Any]
    created_at: datetime


def _is_transient(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and (
        "locked" in str(err).lower() or "busy" in str(err).lower()
    )


class FeatureStoreMetadata:
    """The registry of feature groups, lineage, writes and events.

    Args:
        storage_path: Folder holding ``registry.db``. None (and no config) keeps the registry
            in memory, private to this object: handy in a notebook or a test.
        config: Options (retries, cache TTL, lock timeout); its ``storage_path`` is used when
            ``storage_path`` is not given.
        db_path: Explicit database file, overriding both.
    """

    def __init__(
        self,
        storage_path: str | Path | None = None,
        *,
        config: FeatureStoreConfig | None = None,
        db_path: str | Path | None = None,
    ) -> None:
        self.config = config or FeatureStoreConfig()
        self._anchor: sqlite3.Connection | None = None
        if db_path is not None:
            self.location: str = str(db_path)
        elif storage_path is not None:
            self.location = str(Path(storage_path) / "registry.db")
        elif config is not None:
            self.location = str(config.registry_path)
        else:
            self.location = f"file:tauro_registry_{uuid.uuid4().hex}?mode=memory&cache=shared"
        self.in_memory = self.location.startswith("file:")
        if not self.in_memory:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.RLock()
        self._cache: dict[tuple[str, int | None], tuple[float, FeatureGroupSchema]] = {}
        self._retry = RetryPolicy(
            max_retries=self.config.max_retries,
            backoff_ms=self.config.retry_backoff_ms,
            multiplier=self.config.retry_backoff_multiplier,
            is_transient=_is_transient,
        )
        if self.in_memory:
            self._anchor = self._open()
        self._run(lambda conn: conn.executescript(_DDL), what="create registry tables", write=False)

    # -- connections ----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.location,
                uri=self.in_memory,
                timeout=self.config.lock_timeout_seconds,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            if not self.in_memory:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.config.lock_timeout_seconds * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as err:
            raise MetadataError(f"Cannot open the registry at {self.location!r}: {err}") from err
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.config.lock_timeout_seconds):
            raise MetadataError(
                f"Timed out after {self.config.lock_timeout_seconds}s waiting for the registry lock.",
                hint="Raise lock_timeout_seconds, or look for a thread holding the registry.",
            )
        try:
            yield
        finally:
            self._lock.release()

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, what: str, write: bool = True) -> T:
        """Run ``fn`` in one transaction (``BEGIN IMMEDIATE`` for writes), with retries."""

        def attempt() -> T:
            conn = self._conn()
            if not write:
                return fn(conn)
            with self._locked():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

        try:
            return self._retry.call(attempt, what=f"registry: {what}")
        except sqlite3.Error as err:
            raise MetadataError(f"Registry operation '{what}' failed: {err}") from err

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- feature groups -------------------------------------------------------------------
    def register_feature_group(self, schema: FeatureGroupSchema) -> FeatureGroupSchema:
        """Register ``schema`` under its name and version; return the registered schema.

        Registering an identical schema again is a no-op.

        Raises:
            FeatureRegistryError: If the same name and version hold a different schema (bump
                the version to change a schema).
        """
        fingerprint = schema.fingerprint()

        def register(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT fingerprint, schema_json FROM feature_groups WHERE name=? AND version=?",
                (schema.name, schema.version),
            ).fetchone()
            if row is not None:
                if row["fingerprint"] == fingerprint:
                    return False
                old = FeatureGroupSchema.from_json(row["schema_json"])
                raise FeatureRegistryError(
                    f"Feature group {schema.name!r} version {schema.version} is already registered "
                    f"with a different schema ({_describe_change(old, schema)}).",
                    hint=f"Register the changed schema as version {self._next_version(conn, schema.name)}.",
                )
            conn.execute(
                "INSERT INTO feature_groups VALUES (?, ?, ?, ?, ?)",
                (schema.name, schema.version, schema.to_json(), fingerprint, _now().isoformat()),
            )
            return True

        created = self._run(register, what=f"register {schema.name}")
        self._invalidate(schema.name)
        if created:
            logger.info("registered feature group {} v{}", schema.name, schema.version)
        return schema

    @staticmethod
    def _next_version(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT MAX(version) AS v FROM feature_groups WHERE name=?", (name,)).fetchone()
        return int(row["v"] or 0) + 1

    def get_feature_group(self, name: str, version: int | None = None) -> FeatureGroupSchema:
        """Return the schema of ``name`` at ``version`` (the latest when None).

        Raises:
            FeatureGroupNotFoundError: Listing the registered groups, or the group's versions.
        """
        found = self.find_feature_group(name, version)
        if found is None:
            if version is not None and name in self.list_feature_groups():
                raise FeatureGroupNotFoundError(name, version=version, available=self.list_versions(name))
            raise FeatureGroupNotFoundError(name, available=self.list_feature_groups())
        return found

    def find_feature_group(self, name: str, version: int | None = None) -> FeatureGroupSchema | None:
        """Return the schema of ``name`` at ``version`` (latest when None), or None."""
        key = (name, version)
        ttl = self.config.metadata_cache_ttl_seconds
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]

        def read(conn: sqlite3.Connection) -> sqlite3.Row | None:
            if version is None:
                return conn.execute(
                    "SELECT schema_json FROM feature_groups WHERE name=? ORDER BY version DESC LIMIT 1",
                    (name,),
                ).fetchone()
            return conn.execute(
                "SELECT schema_json FROM feature_groups WHERE name=? AND version=?", (name, version)
            ).fetchone()

        row = self._run(read, what=f"read {name}", write=False)
        if row is None:
            return None
        schema = FeatureGroupSchema.from_json(row["schema_json"])
        if ttl > 0:
            self._cache[key] = (time.monotonic() + ttl, schema)
        return schema

    def _invalidate(self, name: str | None = None) -> None:
        if name is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[0] == name]:
                self._cache.pop(key, None)

    def list_feature_groups(self) -> list[str]:
        """Return the names of every registered group, sorted."""
        rows = self._run(
            lambda c: c.execute("SELECT DISTINCT name FROM feature_groups ORDER BY name").fetchall(),
            what="list groups",
            write=False,
        )
        return [r["name"] for r in rows]

    def list_versions(self, name: str) -> list[int]:
        """Return the registered versions of ``name``, ascending (empty if unknown)."""
        rows = self._run(
            lambda c: c.execute(
                "SELECT version FROM feature_groups WHERE name=? ORDER BY version", (name,)
            ).fetchall(),
            what=f"list versions of {name}",
            write=False,
        )
        return [int(r["version"]) for r in rows]

    def get_feature(self, group_name: str, feature_name: str) -> FeatureSchema:
        """Return one feature of the latest version of a group.

        Raises:
            FeatureGroupNotFoundError: If the group is unknown.
            FeatureNotFoundError: If the group has no such feature (valid names listed).
        """
        return self.get_feature_group(group_name).get_feature(feature_name)

    def list_features(self, group_name: str) -> list[str]:
        """Return the feature names of the latest version of a group."""
        return self.get_feature_group(group_name).feature_names

    def delete_feature_group(self, name: str, version: int | None = None) -> None:
        """Delete one version of a group, or every version when None (writes history is kept).

        Raises:
            FeatureGroupNotFoundError: If nothing matched.
        """

        def delete(conn: sqlite3.Connection) -> int:
            if version is None:
                return conn.execute("DELETE FROM feature_groups WHERE name=?", (name,)).rowcount
            return conn.execute(
                "DELETE FROM feature_groups WHERE name=? AND version=?", (name, version)
            ).rowcount

        deleted = self._run(delete, what=f"delete {name}")
        self._invalidate(name)
        if not deleted:
            raise FeatureGroupNotFoundError(name, version=version, available=self.list_feature_groups())

    # -- lineage --------------------------------------------------------------------------
    def set_lineage(self, feature_name: str, dependencies: Sequence[str]) -> None:
        """Record that ``feature_name`` is derived from each of ``dependencies``.

        Nodes are free-form names such as ``silver.users`` or ``user_features.age``; edges
        accumulate (setting the same edge twice is a no-op).

        Raises:
            LineageCycleError: If an edge would close a cycle (the cycle is named).
        """
        deps = [dependencies] if isinstance(dependencies, str) else list(dependencies)

        def add(conn: sqlite3.Connection) -> None:
            for dep in deps:
                if dep == feature_name:
                    raise LineageCycleError([dep, dep])
                path = self._path(conn, feature_name, dep)
                if path is not None:
                    raise LineageCycleError([dep, *path])
                conn.execute(
                    "INSERT OR IGNORE INTO lineage VALUES (?, ?, ?)", (dep, feature_name, _now().isoformat())
                )

        self._run(add, what=f"set lineage of {feature_name}")

    @staticmethod
    def _path(conn: sqlite3.Connection, start: str, goal: str) -> list[str] | None:
        """Return the downstream path start -> ... -> goal, or None."""
        parents: dict[str, str | None] = {start: None}
        frontier = [start]
        while frontier:
            rows = conn.execute(
                f"SELECT upstream, downstream FROM lineage WHERE upstream IN ({','.join('?' * len(frontier))})",
                frontier,
            ).fetchall()
            frontier = []
            for row in rows:
                node = row["downstream"]
                if node in parents:
                    continue
                parents[node] = row["upstream"]
                if node == goal:
                    path = [node]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])  # type: ignore[arg-type]
                    return list(reversed(path))
                frontier.append(node)
        return None

    def get_upstream(self, node: str, *, recursive: bool = True) -> list[str]:
        """Return what ``node`` is derived from (transitively when ``recursive``), sorted."""
        return self._walk(node, "downstream", "upstream", recursive=recursive)

    def get_downstream(self, node: str, *, recursive: bool = True) -> list[str]:
        """Return what is derived from ``node`` (transitively when ``recursive``), sorted."""
        return self._walk(node, "upstream", "downstream", recursive=recursive)

    def _walk(self, node: str, match: str, take: str, *, recursive: bool) -> list[str]:
        def walk(conn: sqlite3.Connection) -> list[str]:
            seen: set[str] = set()
            frontier = [node]
            while frontier:
                rows = conn.execute(
                    f"SELECT {take} AS n FROM lineage WHERE {match} IN ({','.join('?' * len(frontier))})",
                    frontier,
                ).fetchall()
                frontier = [r["n"] for r in rows if r["n"] not in seen]
                seen.update(frontier)
                if not recursive:
                    break
            return sorted(seen)

        return self._run(walk, what=f"lineage of {node}", write=False)

    def lineage_edges(self) -> list[tuple[str, str]]:
        """Return every lineage edge as ``(upstream, downstream)``, sorted."""
        rows = self._run(
            lambda c: c.execute("SELECT upstream, downstream FROM lineage ORDER BY upstream, downstream").fetchall(),
            what="list lineage",
            write=False,
        )
        return [(r["upstream"], r["downstream"]) for r in rows]

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
        """Record a data write to ``group`` v``version`` and return the record (with its id)."""
        when = written_at or _now()
        payload = json.dumps(details or {}, default=str)

        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO writes (group_name, version, mode, rows, table_version, written_at, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (group, version, mode, rows, table_version, when.isoformat(), payload),
            )
            return int(cur.lastrowid or 0)

        write_id = self._run(insert, what=f"record write to {group}")
        return WriteRecord(write_id, group, version, mode, rows, table_version, when, dict(details or {}))

    def update_write(self, write_id: int, details: dict[str, Any]) -> None:
        """Merge ``details`` into the details of write ``write_id``."""

        def update(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT details FROM writes WHERE id=?", (write_id,)).fetchone()
            if row is None:
                raise MetadataError(f"No write with id {write_id} in the registry.")
            merged = {**json.loads(row["details"]), **details}
            conn.execute("UPDATE writes SET details=? WHERE id=?", (json.dumps(merged, default=str), write_id))

        self._run(update, what=f"update write {write_id}")

    def list_writes(self, group: str, version: int | None = None, *, limit: int | None = None) -> list[WriteRecord]:
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
        rows = self._run(lambda c: c.execute(sql, args).fetchall(), what=f"list writes of {group}", write=False)
        return [
            WriteRecord(
                int(r["id"]), r["group_name"], int(r["version"]), r["mode"], int(r["rows"]),
                r["table_version"], _parse_time(r["written_at"]), json.loads(r["details"]),
            )
            for r in reversed(rows)
        ]

    def get_last_updated(self, group_name: str) -> datetime | None:
        """Return when data was last written to the group (any version), or None if never."""
        row = self._run(
            lambda c: c.execute(
                "SELECT MAX(written_at) AS t FROM writes WHERE group_name=?", (group_name,)
            ).fetchone(),
            what=f"last update of {group_name}",
            write=False,
        )
        return None if row is None or row["t"] is None else _parse_time(row["t"])

    # -- events ---------------------------------------------------------------------------
    def record_event(self, kind: str, payload: dict[str, Any], *, group: str | None = None) -> EventRecord:
        """Persist an event and return it with its id (ids increase in commit order)."""
        when = _now()
        text = json.dumps(payload, default=str)

        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO events (kind, group_name, payload, created_at) VALUES (?, ?, ?, ?)",
                (kind, group, text, when.isoformat()),
            )
            return int(cur.lastrowid or 0)

        event_id = self._run(insert, what=f"record event {kind}")
        return EventRecord(event_id, kind, group, json.loads(text), when)

    def list_events(
        self, *, kind: str | None = None, group: str | None = None, after_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """Return persisted events in order, optionally filtered."""
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
        rows = self._run(lambda c: c.execute(sql, args).fetchall(), what="list events", write=False)
        return [
            EventRecord(int(r["id"]), r["kind"], r["group_name"], json.loads(r["payload"]), _parse_time(r["created_at"]))
            for r in rows
        ]

    # -- documents ------------------------------------------------------------------------
    def put_document(self, kind: str, name: str, payload: dict[str, Any]) -> None:
        """Store (or replace) a named JSON document such as a source or a virtual definition."""
        text = json.dumps(payload, default=str)
        self._run(
            lambda c: c.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?) ON CONFLICT (kind, name) "
                "DO UPDATE SET payload=excluded.payload, updated_at=excluded.updated_at",
                (kind, name, text, _now().isoformat()),
            ),
            what=f"store {kind} {name}",
        )

    def find_document(self, kind: str, name: str) -> dict[str, Any] | None:
        """Return a stored document, or None."""
        row = self._run(
            lambda c: c.execute("SELECT payload FROM documents WHERE kind=? AND name=?", (kind, name)).fetchone(),
            what=f"read {kind} {name}",
            write=False,
        )
        return None if row is None else dict(json.loads(row["payload"]))

    def list_documents(self, kind: str) -> dict[str, dict[str, Any]]:
        """Return every document of ``kind`` by name."""
        rows = self._run(
            lambda c: c.execute("SELECT name, payload FROM documents WHERE kind=? ORDER BY name", (kind,)).fetchall(),
            what=f"list {kind}",
            write=False,
        )
        return {r["name"]: json.loads(r["payload"]) for r in rows}

    def delete_document(self, kind: str, name: str) -> bool:
        """Delete a document; return whether it existed."""
        return bool(
            self._run(
                lambda c: c.execute("DELETE FROM documents WHERE kind=? AND name=?", (kind, name)).rowcount,
                what=f"delete {kind} {name}",
            )
        )

    def health_check(self) -> bool:
        """Return True when the registry answers a query."""
        try:
            self._run(lambda c: c.execute("SELECT 1").fetchone(), what="health check", write=False)
        except MetadataError:
            return False
        return True

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else self.location
        return f"FeatureStoreMetadata({where})"


def _describe_change(old: FeatureGroupSchema, new: FeatureGroupSchema) -> str:
    a, b = old.to_dict(), new.to_dict()
    changed = [k for k in a if a.get(k) != b.get(k)]
    if "features" in changed:
        fa = {f["name"]: f for f in a["features"]}
        fb = {f["name"]: f for f in b["features"]}
        added, removed = sorted(set(fb) - set(fa)), sorted(set(fa) - set(fb))
        modified = sorted(n for n in set(fa) & set(fb) if fa[n] != fb[n])
        parts = [f"{label} {names}" for label, names in (("added", added), ("removed", removed), ("changed", modified)) if names]
        changed = [c for c in changed if c != "features"] + [f"features: {', '.join(parts)}"]
    return "differs in " + "; ".join(changed)
