"""The metadata registry: :class:`FeatureStoreMetadata`.

A SQLite database at ``<storage_path>/registry.db`` (WAL mode, so readers never wait for a
writer) holding versioned feature-group schemas, lineage (a DAG), the history of data writes,
events, and named JSON documents (source definitions, virtual-feature SQL, sync state).
``FeatureStoreMetadata()`` with no arguments is a private in-memory registry.

Concurrency, in layers:

- threads of one process: each thread gets its own connection; writes are serialized by an
  ``RLock`` that waits at most ``lock_timeout_seconds`` (then :class:`MetadataError`);
- processes: every change is one ``BEGIN IMMEDIATE`` transaction, so a read-check-write such as
  "is this schema registered?" or "would this edge close a cycle?" is atomic across processes;
- contention: SQLite's ``busy_timeout`` makes one attempt wait for the database lock; when it
  expires SQLite reports "database is locked" and the :class:`RetryPolicy` built from
  ``max_retries`` / ``retry_backoff_ms`` / ``retry_backoff_multiplier`` backs off and tries
  again. By default the busy timeout is ``lock_timeout_seconds`` split evenly over the
  ``max_retries + 1`` attempts, so a write waits about ``lock_timeout_seconds`` (plus the
  backoff waits) in all before failing with :class:`MetadataError`. A busy timeout as long as
  ``lock_timeout_seconds`` would leave the retry policy nothing to do; pass ``busy_timeout_ms``
  to choose another split (0 = every wait is a policy backoff).

Reads of schemas are cached for ``metadata_cache_ttl_seconds``. A write through this object
clears the cache at once; writes by other processes are seen when the entry expires.

The file's ``PRAGMA user_version`` is the registry schema version (:data:`SCHEMA_VERSION`);
opening upgrades older files in one transaction and refuses files written by a newer release.

Example:
    >>> metadata = FeatureStoreMetadata()          # in memory, for quick use
    >>> metadata.list_feature_groups()
    []
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from loguru import logger

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.exceptions import (
    FeatureGroupNotFoundError,
    FeatureNotFoundError,
    FeatureRegistryError,
    MetadataError,
    RegistryCorruptionError,
)
from tauro_workbench.history import EventRecord, HistoryMixin, WriteRecord, now_utc, stamp
from tauro_workbench.lineage import LineageMixin, require_text
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tauro_workbench.sqlite_database import SQLiteDatabase, decode_json

__all__ = ["SCHEMA_VERSION", "EventRecord", "FeatureStoreMetadata", "WriteRecord"]

T = TypeVar("T")

#: Version of the registry's table layout, stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 1

# _MIGRATIONS[v] upgrades a file from version v - 1 to v; append, never edit, a step.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS feature_groups (name TEXT NOT NULL, version INTEGER NOT NULL,"
        " schema_json TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at TEXT NOT NULL,"
        " PRIMARY KEY (name, version))",
        "CREATE TABLE IF NOT EXISTS lineage (upstream TEXT NOT NULL, downstream TEXT NOT NULL,"
        " created_at TEXT NOT NULL, PRIMARY KEY (upstream, downstream))",
        "CREATE INDEX IF NOT EXISTS lineage_downstream ON lineage (downstream)",
        "CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " group_name TEXT NOT NULL, version INTEGER NOT NULL, mode TEXT NOT NULL,"
        " rows INTEGER NOT NULL, table_version INTEGER, written_at TEXT NOT NULL,"
        " details TEXT NOT NULL DEFAULT '{}')",
        "CREATE INDEX IF NOT EXISTS writes_group ON writes (group_name, version, id)",
        "CREATE INDEX IF NOT EXISTS writes_time ON writes (group_name, written_at)",
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " kind TEXT NOT NULL, group_name TEXT, payload TEXT NOT NULL, created_at TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS events_kind ON events (kind, id)",
        "CREATE TABLE IF NOT EXISTS documents (kind TEXT NOT NULL, name TEXT NOT NULL,"
        " payload TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (kind, name))",
    ),
}


class FeatureStoreMetadata(LineageMixin, HistoryMixin):
    """The registry of feature groups, lineage, writes, events and documents.

    Args:
        storage_path: Folder holding ``registry.db``. None (and no config) keeps the registry
            in memory, private to this object: handy in a notebook or a test.
        config: Options (retries, cache TTL, lock timeout); its ``storage_path`` is used when
            ``storage_path`` is not given.
        db_path: Explicit database file (``":memory:"`` for memory), overriding both.
        busy_timeout_ms: SQLite's wait for the database lock within one attempt; default
            ``lock_timeout_seconds`` split over the ``max_retries + 1`` attempts (see the
            module docstring).
        retry_policy: Waits between attempts; default built from ``config``. Which errors are
            retried is decided by :meth:`is_transient_error`.

    Connections: one per thread, opened on first use. Connections of finished threads are
    closed when a new thread opens one; :meth:`close` (or ``with``) closes them all. Use
    the object after :meth:`close` and a :class:`MetadataError` says so. After ``fork`` a child
    process opens fresh connections (inherited SQLite handles are never reused).

    Example:
        >>> from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
        >>> metadata = FeatureStoreMetadata()
        >>> _ = metadata.register_feature_group(FeatureGroupSchema(
        ...     "users", entity_keys=["user_id"], timestamp_key=None,
        ...     features=[FeatureSchema("age", "INT", "NUMERICAL")]))
        >>> metadata.list_features("users")
        ['age']
    """

    def __init__(
        self,
        storage_path: str | Path | None = None,
        *,
        config: FeatureStoreConfig | None = None,
        db_path: str | Path | None = None,
        busy_timeout_ms: float | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config or FeatureStoreConfig()
        if db_path is not None:
            location = str(db_path)
        elif storage_path is not None:
            location = str(Path(storage_path) / "registry.db")
        elif config is not None:
            location = str(config.registry_path)
        else:
            location = ":memory:"
        if busy_timeout_ms is None:
            busy_timeout_ms = self.config.lock_timeout_seconds * 1000 / (self.config.max_retries + 1)
        self._reset_cache()
        self.database = SQLiteDatabase(
            location,
            migrations=_MIGRATIONS,
            lock_timeout_seconds=self.config.lock_timeout_seconds,
            busy_timeout_ms=busy_timeout_ms,
            retry_policy=retry_policy or RetryPolicy.from_config(self.config),
        )

    @property
    def location(self) -> str:
        """The database file, or ``":memory:"``."""
        return self.database.location

    @property
    def in_memory(self) -> bool:
        """Whether the registry lives in memory (private to this object)."""
        return self.database.in_memory

    @property
    def busy_timeout_ms(self) -> int:
        """SQLite's wait for the database lock within one attempt."""
        return self.database.busy_timeout_ms

    @property
    def retry_policy(self) -> RetryPolicy:
        """The waits between attempts after a "database is locked" error."""
        return self.database.retry_policy

    is_transient_error = staticmethod(SQLiteDatabase.is_transient_error)

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, what: str, write: bool = True) -> T:
        return self.database.run(fn, what=f"registry: {what}", write=write)

    def schema_version(self) -> int:
        """Return the registry's table layout version (``PRAGMA user_version``)."""
        return self.database.schema_version()

    def close(self) -> None:
        """Close every connection; later calls raise :class:`MetadataError`. Idempotent.

        Call it when no other thread is still using the registry.
        """
        self.database.close()

    def __enter__(self) -> FeatureStoreMetadata:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- cache ----------------------------------------------------------------------------
    def _reset_cache(self) -> None:
        # Also after fork: a parent thread may have held the cache lock at that moment.
        self._cache_pid = os.getpid()
        self._cache_lock = threading.Lock()
        self._cache: dict[tuple[str, int | None], tuple[float, FeatureGroupSchema]] = {}
        self._generation = 0

    def _cache_get(self, key: tuple[str, int | None]) -> tuple[int, FeatureGroupSchema | None]:
        if os.getpid() != self._cache_pid:
            self._reset_cache()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return self._generation, hit[1]
            return self._generation, None

    def _cache_put(self, key: tuple[str, int | None], generation: int, schema: FeatureGroupSchema) -> None:
        ttl = self.config.metadata_cache_ttl_seconds
        with self._cache_lock:
            # A write since the read began may have made `schema` stale: do not cache it.
            if ttl > 0 and generation == self._generation:
                self._cache[key] = (time.monotonic() + ttl, schema)

    def _invalidate(self) -> None:
        with self._cache_lock:
            self._generation += 1
            self._cache.clear()

    # -- feature groups -------------------------------------------------------------------
    def register_feature_group(self, schema: FeatureGroupSchema) -> FeatureGroupSchema:
        """Register ``schema`` under its name and version; return the registered schema.

        Registering an identical schema again is a no-op.

        Raises:
            FeatureRegistryError: If the same name and version hold a different schema; the
                message lists what changed and names the next free version.

        Example:
            >>> metadata.register_feature_group(user_features)  # doctest: +SKIP
        """
        self.ensure_feature_group(schema)
        return schema

    def ensure_feature_group(self, schema: FeatureGroupSchema) -> bool:
        """Register ``schema``; return True if this call added it, False if it was there already.

        The check and the insert are one transaction, so among concurrent identical
        registrations (threads or processes) exactly one returns True.

        Raises:
            FeatureRegistryError: If the same name and version hold a different schema.

        Example:
            >>> metadata.ensure_feature_group(user_features)  # doctest: +SKIP
            True
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
                old = self._decode_schema(row["schema_json"], f"{schema.name} v{schema.version}")
                latest = conn.execute(
                    "SELECT MAX(version) FROM feature_groups WHERE name=?", (schema.name,)
                ).fetchone()[0]
                raise FeatureRegistryError(
                    f"Feature group {schema.name!r} version {schema.version} is already registered "
                    f"with a different schema ({_describe_change(old, schema)}).",
                    hint=f"Register the changed schema as version {int(latest) + 1}.",
                )
            conn.execute(
                "INSERT INTO feature_groups VALUES (?, ?, ?, ?, ?)",
                (schema.name, schema.version, schema.to_json(), fingerprint, stamp(now_utc())),
            )
            return True

        created = self._run(register, what=f"register {schema.name}")
        if created:
            self._invalidate()
            logger.info("registered feature group {} v{}", schema.name, schema.version)
        return created

    def get_feature_group(self, name: str, version: int | None = None) -> FeatureGroupSchema:
        """Return the schema of ``name`` at ``version`` (the latest when None).

        Raises:
            FeatureGroupNotFoundError: Listing the registered groups, or the group's versions.

        Example:
            >>> metadata.get_feature_group("users").version  # doctest: +SKIP
            2
        """
        found = self.find_feature_group(name, version)
        if found is None:
            versions = self.list_versions(name)
            if version is not None and versions:
                raise FeatureGroupNotFoundError(name, version=version, available=versions)
            raise FeatureGroupNotFoundError(name, available=self.list_feature_groups())
        return found

    def find_feature_group(self, name: str, version: int | None = None) -> FeatureGroupSchema | None:
        """Return the schema of ``name`` at ``version`` (latest when None), or None (cached)."""
        key = (name, version)
        generation, cached = self._cache_get(key)
        if cached is not None:
            return cached

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
        schema = self._decode_schema(row["schema_json"], f"{name} v{version or 'latest'}")
        self._cache_put(key, generation, schema)
        return schema

    def _decode_schema(self, text: str, row: str) -> FeatureGroupSchema:
        try:
            return FeatureGroupSchema.from_json(text)
        except (TypeError, ValueError, KeyError) as err:  # JSON or schema rules: a tampered row
            raise RegistryCorruptionError(self.location, f"feature_groups {row}", str(err)) from err

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
            FeatureNotFoundError: If the group is unknown or has no such feature (the valid
                names are listed); a missing feature is what the caller asked about either way.
        """
        schema = self.find_feature_group(group_name)
        if schema is None:
            raise FeatureNotFoundError(
                f"{group_name}.{feature_name}",
                candidates=self.list_feature_groups(),
                reason=f"Feature group {group_name!r} is not registered, so it has no feature {feature_name!r}.",
            )
        return schema.get_feature(feature_name)

    def list_features(self, group_name: str) -> list[str]:
        """Return the feature names of the latest version of a group.

        Raises:
            FeatureGroupNotFoundError: If the group is unknown.
        """
        return self.get_feature_group(group_name).feature_names

    def delete_feature_group(self, name: str, version: int | None = None) -> None:
        """Delete one version of a group, or every version when None.

        Write history, events and lineage edges are kept: they describe what happened. The
        write records of the deleted versions are marked ``details["deleted_at"]`` (in the same
        transaction), so a later registration of the same name and version starts a fresh
        history: its writes are not matched against the deleted ones by ``write_id`` or table
        version. This deletes registry entries only; ``MaterializedFeatureStore.
        delete_feature_group`` also deletes the data (offline table and online rows).

        Raises:
            FeatureGroupNotFoundError: If nothing matched.

        Example:
            >>> metadata.delete_feature_group("users", version=1)  # doctest: +SKIP
        """

        def delete(conn: sqlite3.Connection) -> int:
            mark = (
                "UPDATE writes SET details=json_set(details, '$.deleted_at', ?) "
                "WHERE json_extract(details, '$.deleted_at') IS NULL AND group_name=?"
            )
            if version is None:
                conn.execute(mark, (stamp(now_utc()), name))
                return conn.execute("DELETE FROM feature_groups WHERE name=?", (name,)).rowcount
            conn.execute(mark + " AND version=?", (stamp(now_utc()), name, version))
            return conn.execute(
                "DELETE FROM feature_groups WHERE name=? AND version=?", (name, version)
            ).rowcount

        deleted = self._run(delete, what=f"delete {name}")
        self._invalidate()
        if not deleted:
            versions = self.list_versions(name)
            if version is not None and versions:
                raise FeatureGroupNotFoundError(name, version=version, available=versions)
            raise FeatureGroupNotFoundError(name, available=self.list_feature_groups())
        logger.info(
            "deleted feature group {} ({})", name, "all versions" if version is None else f"v{version}"
        )

    # -- documents ------------------------------------------------------------------------
    def put_document(self, kind: str, name: str, payload: dict[str, Any]) -> None:
        """Store (or replace) a named JSON document such as a source or a virtual definition.

        Raises:
            FeatureRegistryError: If ``kind`` or ``name`` is empty.
        """
        require_text(kind, "A document kind")
        require_text(name, "A document name")
        text = json.dumps(payload, default=str)
        self._run(
            lambda c: c.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?) ON CONFLICT (kind, name) "
                "DO UPDATE SET payload=excluded.payload, updated_at=excluded.updated_at",
                (kind, name, text, stamp(now_utc())),
            ),
            what=f"store {kind} {name}",
        )

    def find_document(self, kind: str, name: str) -> dict[str, Any] | None:
        """Return a stored document, or None."""
        row = self._run(
            lambda c: c.execute(
                "SELECT payload FROM documents WHERE kind=? AND name=?", (kind, name)
            ).fetchone(),
            what=f"read {kind} {name}",
            write=False,
        )
        if row is None:
            return None
        return dict(decode_json(row["payload"], location=self.location, row=f"documents {kind}/{name}"))

    def list_documents(self, kind: str) -> dict[str, dict[str, Any]]:
        """Return every document of ``kind`` by name."""
        rows = self._run(
            lambda c: c.execute(
                "SELECT name, payload FROM documents WHERE kind=? ORDER BY name", (kind,)
            ).fetchall(),
            what=f"list {kind}",
            write=False,
        )
        return {
            r["name"]: decode_json(r["payload"], location=self.location, row=f"documents {kind}/{r['name']}")
            for r in rows
        }

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
        where = "in memory" if self.in_memory else repr(self.location)
        return f"FeatureStoreMetadata({where}{', closed' if self.database.closed else ''})"


def _describe_change(old: FeatureGroupSchema, new: FeatureGroupSchema) -> str:
    a, b = old.to_dict(), new.to_dict()
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if "features" in changed:
        fa = {f["name"]: f for f in a.get("features", [])}
        fb = {f["name"]: f for f in b.get("features", [])}
        added, removed = sorted(set(fb) - set(fa)), sorted(set(fa) - set(fb))
        modified = sorted(n for n in set(fa) & set(fb) if fa[n] != fb[n])
        parts = [
            f"{label} {names}"
            for label, names in (("added", added), ("removed", removed), ("changed", modified))
            if names
        ]
        changed = [c for c in changed if c != "features"] + [f"features: {', '.join(parts) or 'reordered'}"]
    return "differs in " + "; ".join(changed) if changed else "differs in its definition"
