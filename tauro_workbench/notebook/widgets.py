"""The registry browser widget (anywidget; the ``notebook`` extra).

A thin view of a headless :class:`~tauro_workbench.catalog.Catalog`: the browser sets the
``request`` trait, the kernel runs it with :meth:`Catalog.handle` and answers with a new
``state`` trait that the JavaScript draws. The JavaScript and CSS ship in the package
(``tauro_workbench/notebook/static``), so it renders offline in JupyterLab, VS Code and marimo
(``mo.ui.anywidget(widget)``). Importing this module imports anywidget.

Example:
    >>> from tauro_workbench.notebook import browse
    >>> browser = browse(wb)                 # doctest: +SKIP
    >>> browser.catalog.select("user_features")["entity_keys"]  # doctest: +SKIP
    ['user_id']
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tauro_workbench.catalog import Catalog
from tauro_workbench.exceptions import MissingExtraError

try:
    import anywidget
    import traitlets
except ImportError as err:  # pragma: no cover - the notebook extra is installed in CI
    raise MissingExtraError("anywidget", extra="notebook") from err

__all__ = ["STATIC", "RegistryBrowser", "browse"]

STATIC = Path(__file__).with_name("static")
"""Folder of the browser's JavaScript and CSS."""


class RegistryBrowser(anywidget.AnyWidget):  # type: ignore[misc]
    """The registry browser: search, group list, detail pane, preview and promote actions.

    Args:
        catalog: The headless state and actions it shows.
    """

    _esm = STATIC / "browser.js"
    _css = STATIC / "browser.css"
    state = traitlets.Dict({}).tag(sync=True)
    request = traitlets.Dict({}).tag(sync=True)

    def __init__(self, catalog: Catalog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog
        self.state = copy.deepcopy(catalog.state)
        self.observe(self._on_request, names=["request"])

    def _on_request(self, change: dict[str, Any]) -> None:
        request = change.get("new") or {}
        if request.get("action"):
            self.handle(request)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request as a click in the browser would, and publish the new state."""
        self.state = copy.deepcopy(self.catalog.handle(request))
        return self.state


def browse(workbench: Any, *, group: str | None = None, query: str = "") -> RegistryBrowser:
    """Return the registry browser widget over ``workbench`` (display it, or wrap it in marimo).

    In marimo, wrap it: ``mo.ui.anywidget(browse(wb))``; in Jupyter, make it the cell's value.

    Args:
        workbench: A :class:`~tauro_workbench.Workbench`, a store with a registry, or a Catalog.
        group: A group to select first.
        query: A search to start with.

    Raises:
        FeatureGroupNotFoundError: If ``group`` is not registered.

    Example:
        >>> widget = browse(wb, group="user_features")  # doctest: +SKIP
    """
    catalog = workbench if isinstance(workbench, Catalog) else Catalog(workbench)
    if query:
        catalog.search(query)
    if group is not None:
        catalog.select(group)
    return RegistryBrowser(catalog)
