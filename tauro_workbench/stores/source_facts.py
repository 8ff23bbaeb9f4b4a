"""SourceFacts: what the hybrid router knows about a virtual definition's sources.

Readability, row estimate and last change of the sources a virtual group reads, from source
metadata only (never a scan). Descriptions are cached per source fingerprint, so a source is
described again only after it changed.

Example:
    >>> facts = SourceFacts(lambda: virtual.executor.sources)  # doctest: +SKIP
    >>> facts.of("spend", ["silver.spend"])  # doctest: +SKIP
    (True, 5, datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from loguru import logger

from tauro_workbench.exceptions import DataSourceError
from tauro_workbench.sources import SourceInfo

__all__ = ["SourceFacts"]

_CACHE_SIZE = 256  # old fingerprints are never asked again: the cache is simply cleared when full


class SourceFacts:
    """Describes the sources of virtual definitions, cached per source fingerprint.

    Args:
        sources: Returns the executor's source registry (``find(name)``: a source or None);
            called at each lookup, so the executor is created only when a read needs it.
    """

    def __init__(self, sources: Callable[[], Any]) -> None:
        self._sources = sources
        self._infos: dict[tuple[str, str], SourceInfo] = {}

    def of(self, group: str, names: Sequence[str]) -> tuple[bool, int | None, datetime | None]:
        """Return (readable, row estimate, last change) of the sources ``group`` reads.

        The estimate is the largest source's (the size a read scans); unknown if any is. An
        unregistered or unreadable source makes the definition unreadable (logged).
        """
        estimates: list[int | None] = []
        changes: list[datetime] = []
        for name in names:
            source = self._sources().find(name)
            if source is None:
                logger.warning("virtual group {} reads source {} which is not registered", group, name)
                return False, None, None
            try:
                key = (name, source.fingerprint())
                info = self._infos.get(key)
                if info is None:
                    info = source.describe()
                    if len(self._infos) >= _CACHE_SIZE:
                        self._infos.clear()
                    self._infos[key] = info
            except (DataSourceError, OSError) as err:
                logger.warning("source {} of virtual group {} is unreadable: {}", name, group, err)
                return False, None, None
            estimates.append(info.row_estimate)
            if info.freshness is not None:
                changes.append(info.freshness)
        known = [e for e in estimates if e is not None]
        rows = max(known) if known and len(known) == len(estimates) else None
        return True, rows, max(changes) if changes else None
