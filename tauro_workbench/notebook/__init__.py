"""Notebook clients of the core: charts (Altair) and the registry browser (anywidget).

Submodules import their optional packages only when used; importing this package imports none.

Example:
    >>> from tauro_workbench.notebook import browse
    >>> browse(wb)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["browse"]


def browse(workbench: Any, *, group: str | None = None, query: str = "") -> Any:
    """Return the registry browser widget (see :func:`tauro_workbench.notebook.widgets.browse`)."""
    from tauro_workbench.notebook.widgets import browse as _browse

    return _browse(workbench, group=group, query=query)
