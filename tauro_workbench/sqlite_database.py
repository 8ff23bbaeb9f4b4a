"""A SQLite database shared safely by threads and processes: :class:`SQLiteDatabase`.

The transaction runner under the registry, in layers:

- threads of one process: each thread gets its own connection (WAL mode, so readers never wait
  for a writer); writes are serialized by an ``RLock`` that waits at most
  ``lock_timeout_seconds`` and then raises :class:`MetadataError`;
- processes: every change is one ``BEGIN IMMEDIATE`` transaction, so a read-check-write is
  atomic across processes; every read is one snapshot (``BEGIN``);
- contention: SQLite's ``busy_timeout`` makes one attempt wait for the database lock; when it
  expires SQLite reports "database is locked" and the :class:`RetryPolicy` backs off and tries
  again. The owner picks the split; :class:`~tauro_workbench.registry.FeatureStoreMetadata`
  spreads ``lock_timeout_seconds`` over the attempts. A busy timeout as long as the whole
  budget leaves the retry policy nothing to do.

A file's ``PRAGMA user_version`` is its layout version: opening applies the missing migration
steps in one transaction and refuses a file written by a newer release.

Example:
    >>> db = SQLiteDatabase(":memory:", migrations={1: ("CREATE TABLE t (x INTEGER)",)})
    >>> db.run(lambda c: c.execute("INSERT INTO t VALUES (1)").rowcount, what="insert")
    1
    >>> db.schema_version()
    1
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from tauro_workbench.exceptions import MetadataError, RegistryCorruptionError
from tauro_workbench.retry import RetryPolicy

__all__ = ["SQLiteDatabase", "decode_json"]

T = TypeVar("T")


def decode_json(text: object, *, location: str, row: str, expect: type = dict) -> Any:
    """Decode a JSON column the library wrote, or raise :class:`RegistryCorruptionError`.

    Args:
        text: The stored column value.
        location: The registry file, for the message.
        row: Which row it is (``"writes id=3"``), for the message.
        expect: The JSON type the column must hold (``dict`` or ``list``).
    """
    try:
        value = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise RegistryCorruptionError(location, row, f"not valid JSON ({err})") from err
    if not isinstance(value, expect):
        raise RegistryCorruptionError(
            location, row, f"expected a JSON {expect.__name__}, found {type(value).__name__}"
        )
    return value


class SQLiteDatabase:
    """A SQLite file (or ``":memory:"``) with per-thread connections, transactions and retries.

    Args:
        location: Database file, or ``":memory:"`` for a private in-memory database (one
            connection shared by every thread, all access serialized by the lock).
        migrations: ``migrations[v]`` holds the statements that upgrade layout ``v - 1`` to ``v``.
        lock_timeout_seconds: Longest wait for the in-process write lock.
        busy_timeout_ms: SQLite's wait for the database lock within one attempt.
        retry_policy: Waits between attempts after "database is locked" / "busy" errors.

    Connections of finished threads are closed when a new thread opens one; :meth:`close`
    closes them all. After ``fork`` a child opens fresh connections (inherited SQLite handles
    and locks are never reused).
    """

    def __init__(
        self,
        location: str | Path,
        *,
        migrations: Mapping[int, Sequence[str]],
        lock_timeout_seconds: float = 30.0,
        busy_timeout_ms: float = 5000.0,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.location = str(location)
        self.in_memory = self.location == ":memory:"
        self.lock_timeout_seconds = lock_timeout_seconds
        self.busy_timeout_ms = max(0, int(busy_timeout_ms))
        self.retry_policy = retry_policy or RetryPolicy()
        self.closed = False
        self._memory: sqlite3.Connection | None = None
        self._reset_process_state()
        if self.in_memory:
            self._memory = self._open()
        else:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        self._migrations = dict(migrations)
        # Only an outdated file needs the write lock: opening must not queue behind writers.
        if self.schema_version() != max(self._migrations, default=0):
            self.run(self._migrate, what="create or upgrade the tables")

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        #: The in-process write lock (reentrant).
        self.lock = threading.RLock()
        self._conns_lock = threading.Lock()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []

    def _open(self) -> sqlite3.Connection:
        # `timeout` is SQLite's busy_timeout; isolation_level=None: we issue BEGIN ourselves.
        conn = sqlite3.connect(
            self.location, timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            if not self.in_memory:
                conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives process crashes; only a power loss can drop the last commits.
                conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_usable(self) -> None:
        if self.closed:
            raise MetadataError(
                f"The database {self.location!r} is closed.",
                hint="Open a new FeatureStoreMetadata (or SQLiteDatabase) on it.",
            )
        if os.getpid() != self._pid:
            # A forked child must not touch its parent's SQLite handles, nor a lock a parent
            # thread held at fork time. An in-memory database was copied with the process: keep it.
            self._reset_process_state()

    def _connection(self) -> sqlite3.Connection:
        if self._memory is not None:
            return self._memory
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._conns_lock:
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        other.close()
                self._conns = [*alive, (threading.current_thread(), conn)]
        return conn

    def open_connections(self) -> int:
        """Return how many connections are open (one per thread that used the database)."""
        with self._conns_lock:
            return len(self._conns) + (self._memory is not None)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.lock
        if not lock.acquire(timeout=self.lock_timeout_seconds):
            raise MetadataError(
                f"Timed out after {self.lock_timeout_seconds}s waiting for the write lock of "
                f"{self.location!r} (another thread of this process holds it).",
                hint="Raise lock_timeout_seconds, or look for a thread stuck inside the registry.",
            )
        try:
            yield
        finally:
            lock.release()

    @staticmethod
    def is_transient_error(err: BaseException) -> bool:
        """Return True for SQLite errors worth retrying ("database is locked", "busy")."""
        text = str(err).lower()
        return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)

    def run(self, fn: Callable[[sqlite3.Connection], T], *, what: str, write: bool = True) -> T:
        """Return ``fn(connection)`` run in one transaction, retrying transient errors.

        Args:
            fn: The work; it runs again from scratch after a transient error (its earlier
                attempt was rolled back), so it must not have effects outside the database.
            what: Names the operation in warnings and errors.
            write: ``BEGIN IMMEDIATE`` under the write lock; otherwise a read snapshot.

        Returns:
            What ``fn`` returned.

        Raises:
            MetadataError: On a SQLite error, a lock timeout, or contention that outlasted the
                retries. Errors raised by ``fn`` itself propagate unchanged.

        Example:
            >>> db.run(lambda c: c.execute("SELECT 1").fetchone()[0], what="ping", write=False)  # doctest: +SKIP
            1
        """

        def attempt() -> T:
            self._check_usable()
            # Reads take no lock (WAL snapshots); the one in-memory connection is always locked.
            guard = self._locked() if write or self._memory is not None else nullcontext()
            with guard:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.rollback()
                    raise
                return result

        try:
            return self.retry_policy.call(attempt, what=what, is_transient=self.is_transient_error)
        except sqlite3.Error as err:
            if self.is_transient_error(err):
                raise MetadataError(
                    f"'{what}' on {self.location!r} gave up after {self.retry_policy.max_retries} "
                    f"retries: {err}.",
                    hint="Another process holds the database; raise max_retries, retry_backoff_ms "
                    "or lock_timeout_seconds.",
                ) from err
            raise MetadataError(f"'{what}' on {self.location!r} failed: {err}.") from err

    def _migrate(self, conn: sqlite3.Connection) -> None:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        target = max(self._migrations, default=0)
        if current > target:
            raise MetadataError(
                f"The database {self.location!r} has layout version {current}, newer than this "
                f"release understands ({target}).",
                hint="Upgrade tauro-workbench to open it.",
            )
        for version in range(current + 1, target + 1):
            for statement in self._migrations[version]:
                conn.execute(statement)
            # An integer from the migration table, not user input (PRAGMA takes no parameters).
            conn.execute(f"PRAGMA user_version={int(version)}")
            logger.debug("{} upgraded to layout version {}", self.location, version)

    def schema_version(self) -> int:
        """Return the layout version (``PRAGMA user_version``)."""
        row = self.run(
            lambda c: c.execute("PRAGMA user_version").fetchone(), what="schema version", write=False
        )
        return int(row[0])

    def close(self) -> None:
        """Close every connection; later calls raise :class:`MetadataError`. Idempotent.

        Call it when no other thread is still using the database.
        """
        with self._conns_lock:
            self.closed = True
            for _, conn in self._conns:
                conn.close()
            self._conns = []
            if self._memory is not None:
                self._memory.close()
                self._memory = None
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SQLiteDatabase({self.location!r}{', closed' if self.closed else ''})"
