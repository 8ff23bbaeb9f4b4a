"""A bounded LRU cache of read results, keyed by the query and the table versions it read.

Because every key holds the exact table versions a result was computed from, a write (which
creates a new version) can never make the cache serve stale data: the next read resolves the
new version, misses, and computes afresh. Entries of old versions age out in LRU order.

Example:
    >>> import polars as pl
    >>> cache = ResultCache(max_bytes=1 << 20)
    >>> cache.put(("q", 1), pl.DataFrame({"a": [1]}))
    >>> cache.get(("q", 1)).height
    1
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable

import polars as pl

__all__ = ["ResultCache", "frame_digest"]


def frame_digest(frame: pl.DataFrame) -> str:
    """Return a digest of a frame's schema and rows, for use in cache keys."""
    digest = hashlib.sha256(repr(frame.schema).encode())
    if frame.height:
        # through Arrow buffers: numpy is not a dependency
        for buffer in frame.hash_rows(seed=0).to_arrow().buffers():
            if buffer is not None:
                digest.update(memoryview(buffer))
    return f"{frame.height}:{digest.hexdigest()}"


class ResultCache:
    """Thread-safe LRU of DataFrames bounded by their estimated size.

    Args:
        max_bytes: Upper bound of the summed ``estimated_size()`` of the entries; a result
            larger than the bound is not cached. 0 disables the cache.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[pl.DataFrame, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        """Summed estimated size of the cached results."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> pl.DataFrame | None:
        """Return the cached result for ``key`` (and mark it recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: Hashable, frame: pl.DataFrame) -> None:
        """Cache ``frame`` under ``key``, evicting least recently used results to fit."""
        size = int(frame.estimated_size())
        if self.max_bytes <= 0 or size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._entries[key] = (frame, size)
            self._size += size
            while self._size > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._size -= evicted

    def clear(self) -> None:
        """Drop every cached result."""
        with self._lock:
            self._entries.clear()
            self._size = 0

    def __repr__(self) -> str:
        return f"ResultCache({len(self)} results, {self._size} of {self.max_bytes} bytes)"
