"""The commit lock of an offline table: one writer at a time per table, across processes.

Writes number their rows with the table version their commit creates (see
:mod:`tauro_workbench.stores.offline_table`), so a Delta commit must land at exactly ``read
version + 1``; two writers racing for the same version make one of them start over. Under load
(a slow merge racing several appenders) the slow writer can lose every race. Writers of this
library therefore take an advisory ``flock`` on ``<table>/_tauro_commit.lock`` around each commit
attempt: commits of one table are serialized on a host, and the kernel releases the lock when a
writer dies (even by SIGKILL), so a crash never leaves the table locked. Other engines' writers
do not take the lock; their conflicts are retried per the store's retry policy.

Files starting with ``_`` are ignored by Delta readers and by vacuum.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> with commit_lock(Path(tempfile.mkdtemp()), timeout_seconds=1.0):
    ...     pass
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tauro_workbench.exceptions import FeatureMaterializationError, StoragePathError

__all__ = ["LOCK_FILE", "commit_lock", "ensure_folder", "storage_error"]

LOCK_FILE = "_tauro_commit.lock"


def ensure_folder(path: Path) -> None:
    """Create ``path`` (and its parents) or raise :class:`StoragePathError` naming it.

    Raises:
        StoragePathError: If a part of the path is a file, or the folder cannot be created or
            written by this process.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(path, err) from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoragePathError(path, "the folder is not writable by this process")


def storage_error(path: object, err: OSError) -> StoragePathError:
    """Return the :class:`StoragePathError` saying why ``path`` could not be created or written."""
    if isinstance(err, FileExistsError | NotADirectoryError):
        return StoragePathError(path, f"a part of the path is a file, not a folder ({err})")
    if isinstance(err, PermissionError):
        return StoragePathError(path, f"permission denied ({err})")
    return StoragePathError(path, str(err))


@contextmanager
def commit_lock(table_path: Path, *, timeout_seconds: float) -> Iterator[None]:
    """Hold the commit lock of the table at ``table_path`` (created if needed).

    The lock follows the folder: if the folder was replaced (a deleted group's table moved
    away) while waiting, the lock of the new folder is taken instead.

    Raises:
        StoragePathError: If the table folder cannot be created or written.
        FeatureMaterializationError: If another writer held the lock for ``timeout_seconds``.
    """
    deadline = time.monotonic() + timeout_seconds
    delay = 0.001
    while True:
        ensure_folder(table_path)
        lock_path = table_path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as err:
            raise StoragePathError(lock_path, f"cannot open the commit lock ({err})") from err
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise FeatureMaterializationError(
                            f"another writer held the commit lock {str(lock_path)!r} for more than "
                            f"{timeout_seconds:g} s (nothing was committed)",
                            hint="Retry the write, or raise lock_timeout_seconds in the config.",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.02)
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            os.close(fd)  # releases the flock
