"""A marimo notebook exported to static HTML renders from a loopback server with no CDN."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tauro_workbench.exceptions import ConfigurationError
from tauro_workbench.notebook.export import MARIMO_ASSETS, export_marimo_html
from tests.browser.conftest import OfflinePage, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


def test_exported_drift_notebook_renders_offline(
    tmp_path: Path, offline_page: OfflinePage, screenshot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("TAURO_FS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TAURO_FS_STORAGE_PATH", str(tmp_path / "repo"))
    site = tmp_path / "site"
    page_path = export_marimo_html(ROOT / "notebooks" / "drift.py", site, link_assets=True)
    html = page_path.read_text()
    assert "cdn.jsdelivr.net" not in html and f"./{MARIMO_ASSETS}/" in html

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/{page_path.name}", server)
        page = offline_page.page
        page.goto(f"http://127.0.0.1:{port}/{page_path.name}")
        page.locator(".tauro-drift-report").first.wait_for(timeout=60_000)
        page.locator(".vega-embed svg, .vega-embed canvas").first.wait_for(timeout=60_000)
        assert "amount" in page.locator(".tauro-drift-report").first.inner_text()
        page.screenshot(path=str(screenshot_dir / "marimo_export_drift.png"))
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert offline_page.blocked == [], f"requests left loopback: {offline_page.blocked}"
    assert offline_page.errors == [], f"page errors: {offline_page.errors}"


def test_a_failing_export_raises_with_marimo_output(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(
        "import marimo\napp = marimo.App()\n\n@app.cell\ndef _():\n    1 / 0\n    return\n\n"
        'if __name__ == "__main__":\n    app.run()\n'
    )
    with pytest.raises(ConfigurationError, match="failed"):
        export_marimo_html(broken, tmp_path / "out", link_assets=True)
