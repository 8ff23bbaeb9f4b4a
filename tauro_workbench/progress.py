"""Progress bars on long work, off unless a client turns them on.

Library code never draws on its own: the CLI calls :func:`enable_progress` when stderr is a
terminal, and a notebook user may do the same. Bars come from ``tqdm.auto``, so they render as
widgets in Jupyter and as text elsewhere.

Example:
    >>> from tauro_workbench.progress import enable_progress
    >>> enable_progress()   # backfills and large online syncs now show a bar
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["enable_progress", "progress_bar", "progress_enabled"]

T = TypeVar("T")

_state = {"enabled": False}


def enable_progress(enabled: bool = True) -> None:
    """Turn progress bars of long work on (or off with ``False``) for this process."""
    _state["enabled"] = enabled


def progress_enabled() -> bool:
    """Return whether progress bars are on."""
    return _state["enabled"]


def progress_bar(items: Iterable[T], *, total: int | None = None, **options: Any) -> Iterator[T]:
    """Iterate ``items``, drawing a bar when progress is on and there is more than one item."""
    count = total if total is not None else len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    if not _state["enabled"] or (count is not None and count < 2):
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, total=count, **options)
