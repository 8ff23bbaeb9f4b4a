"""Export notebooks to HTML that renders with no network.

- Jupyter (:func:`export_html`): nbconvert's templates load MathJax, require.js and the widget
  manager from a CDN; this export turns those off, so tables, SVG lineage graphs and vl-convert
  charts (all plain HTML/SVG in the outputs) show offline. Widgets need a live kernel and are
  left as their text form. Needs ``nbconvert`` (in the ``dev`` extra).
- marimo (:func:`export_marimo_html`): ``marimo export html`` loads marimo's frontend from a
  CDN; this export runs it, puts the installed ``marimo/_static`` next to the page and points
  the page at it. Browsers refuse ES modules from ``file://``, so open the folder through a
  local server: ``python -m http.server -d <folder> --bind 127.0.0.1``.

Example:
    >>> from tauro_workbench.notebook.export import export_html, export_marimo_html
    >>> export_html("executed.ipynb", "quickstart.html")          # doctest: +SKIP
    >>> export_marimo_html("notebooks/drift.py", "site")         # doctest: +SKIP
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tauro_workbench.exceptions import ConfigurationError, MissingExtraError

__all__ = ["MARIMO_ASSETS", "export_html", "export_marimo_html", "to_offline_html"]

MARIMO_ASSETS = "marimo_static"
"""Folder, next to an exported marimo page, holding marimo's frontend."""
_MARIMO_CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/@marimo-team/frontend@[^/\"']+/dist/")

_OFFLINE = {
    "mathjax_url": "",
    "require_js_url": "",
    "jquery_url": "",
    "mermaid_js_url": "",
    "widget_renderer_url": "",
    "jupyter_widgets_base_url": "",
}


def to_offline_html(notebook: Any) -> str:
    """Return the HTML of a notebook node (``nbformat``) with every CDN script left out.

    Raises:
        MissingExtraError: If ``nbconvert`` is not installed.
    """
    try:
        from nbconvert import HTMLExporter
    except ImportError as err:
        raise MissingExtraError("nbconvert", extra="dev") from err
    body, _ = HTMLExporter(template_name="lab", **_OFFLINE).from_notebook_node(notebook)
    return str(body)


def export_html(notebook: str | Path, output: str | Path) -> Path:
    """Write ``notebook`` (an executed ``.ipynb``) as offline HTML to ``output``; return the path.

    Raises:
        MissingExtraError: If ``nbconvert`` is not installed.
    """
    import nbformat

    node = nbformat.read(str(notebook), as_version=4)
    target = Path(output)
    target.write_text(to_offline_html(node), encoding="utf-8")
    return target


def export_marimo_html(
    notebook: str | Path, folder: str | Path, *, link_assets: bool = False, timeout: float = 300
) -> Path:
    """Run a marimo notebook and export it as ``<folder>/<name>.html`` with its frontend beside it.

    Args:
        notebook: The marimo ``.py`` notebook (it runs, in its own folder, like ``marimo export``).
        folder: Where the page and the ``marimo_static`` assets go (created).
        link_assets: Symlink the installed assets instead of copying them (~30 MB).
        timeout: Seconds the export may take.

    Returns:
        The page's path.

    Raises:
        ConfigurationError: If the export fails (marimo's output is in the message).
    """
    import marimo

    source = Path(notebook).resolve()
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    page = target / f"{source.stem}.html"
    result = subprocess.run(
        [sys.executable, "-m", "marimo", "export", "html", str(source), "-o", str(page.resolve()), "--force"],
        cwd=source.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0 or not page.is_file():
        raise ConfigurationError(
            f"marimo export html of {str(source)!r} failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    assets = target / MARIMO_ASSETS
    static = Path(marimo.__file__).with_name("_static")
    if not assets.exists():
        if link_assets:
            assets.symlink_to(static, target_is_directory=True)
        else:
            shutil.copytree(static, assets)
    page.write_text(
        _MARIMO_CDN.sub(f"./{MARIMO_ASSETS}/", page.read_text(encoding="utf-8")), encoding="utf-8"
    )
    return page
