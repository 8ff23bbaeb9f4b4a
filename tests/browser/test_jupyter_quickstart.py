"""The Jupyter quickstart executed in a real kernel, exported to HTML, rendered in Chromium offline."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tauro_workbench.notebook.export import export_html
from tests.browser.conftest import OfflinePage

ROOT = Path(__file__).resolve().parents[2]


def test_jupyter_quickstart_html_displays_render_offline(
    tmp_path: Path, offline_page: OfflinePage, screenshot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("TAURO_FS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TAURO_FS_STORAGE_PATH", str(tmp_path / "repo"))  # the kernel inherits it
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    executed = tmp_path / "quickstart.ipynb"
    nbformat.write(nb, executed)
    html = export_html(executed, tmp_path / "quickstart.html")

    page = offline_page.page
    page.goto(html.as_uri())
    page.locator(".tauro-registry table.tauro-table").wait_for()
    groups = page.locator(".tauro-registry table.tauro-table tbody tr")
    assert groups.count() == 2 and "user_purchases_daily" in groups.nth(0).inner_text()
    lineage = page.locator(".tauro-lineage svg.tauro-lineage-svg")
    assert lineage.is_visible() and lineage.locator("g.tauro-node").count() >= 5
    assert page.locator(".tauro-drift-report svg.tauro-psi-chart").is_visible()
    assert page.locator(".tauro-preview table.tauro-frame tbody tr").count() == 5
    assert "promoted" in page.locator(".tauro-promotion").inner_text()
    assert "user_purchases_daily" in page.locator(".tauro-training-set").inner_text()
    chart = page.locator(".jp-RenderedSVG svg, .jp-RenderedSVG img, img[src^='data:image/svg+xml']").first
    assert chart.evaluate(
        "e => e.tagName === 'svg' || (e.complete && e.naturalWidth > 100)"
    )  # vl-convert chart
    cell = page.locator(".tauro-registry table.tauro-table td").first
    padding = cell.evaluate("e => getComputedStyle(e).paddingLeft")
    assert padding == "12px"  # our padding wins over the notebook stylesheet

    shot = screenshot_dir / "jupyter_quickstart.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert offline_page.blocked == [], f"requests left loopback: {offline_page.blocked}"
    assert offline_page.errors == [], f"page errors: {offline_page.errors}"
