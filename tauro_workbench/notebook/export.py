"""Export an executed Jupyter notebook to one HTML file that renders with no network.

nbconvert's templates load MathJax, require.js and the widget manager from a CDN; this export
turns those off, so tables, SVG lineage graphs and vl-convert charts (all plain HTML/SVG in the
outputs) show offline. Widgets need a live kernel and are left as their text form.
Needs ``nbconvert`` (``pip install nbconvert``; it is in the ``dev`` extra).

Example:
    >>> from tauro_workbench.notebook.export import export_html
    >>> export_html("executed.ipynb", "quickstart.html")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tauro_workbench.exceptions import MissingExtraError

__all__ = ["export_html", "to_offline_html"]

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
