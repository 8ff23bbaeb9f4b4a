"""The marimo quickstart served by ``marimo run``, rendered in a real Chromium with no network."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OfflinePage, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 120_000


@pytest.fixture
def marimo_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAURO_FS_")}
    env["TAURO_FS_STORAGE_PATH"] = str(tmp_path / "repo")
    log = (tmp_path / "marimo.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marimo",
            "run",
            str(ROOT / "notebooks" / "quickstart.py"),
            "--headless",
            "--no-token",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()  # kernels are threads of this one process
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_marimo_quickstart_renders_displays_charts_and_a_clickable_browser(
    marimo_server: str, offline_page: OfflinePage, screenshot_dir: Path
) -> None:
    page = offline_page.page
    page.goto(marimo_server)
    page.locator(".tauro-registry table").first.wait_for(timeout=TIMEOUT_MS)
    registry = page.locator(".tauro-registry").first.inner_text()
    assert "user_txn_daily" in registry and "user_purchases_daily" in registry

    lineage = page.locator(".tauro-lineage svg.tauro-lineage-svg").first
    lineage.wait_for(timeout=TIMEOUT_MS)
    assert lineage.locator("g.tauro-node").count() >= 5
    assert page.locator(".tauro-preview").first.is_visible()
    assert (
        "FROM (SELECT DISTINCT * FROM silver.purchases)" in page.locator(".tauro-preview").first.inner_text()
    )

    page.locator(".vega-embed svg, .vega-embed canvas").first.wait_for(timeout=TIMEOUT_MS)
    page.locator(".vega-embed").nth(1).wait_for(timeout=TIMEOUT_MS)  # wb.drift's chart and feature_over_time
    assert "txn_amount_mean" in page.locator(".tauro-drift-report").first.inner_text()

    group = page.locator('.tauro-browser .tw-group[data-group="user_txn_daily"]')
    group.wait_for(timeout=TIMEOUT_MS)
    group.scroll_into_view_if_needed()
    group.click()
    title = page.locator(".tauro-browser .tw-detail .tw-title")
    title.wait_for(timeout=30_000)
    expect(title).to_have_text("user_txn_daily", timeout=30_000)
    detail = page.locator(".tauro-browser .tw-detail").first.inner_text()
    assert "txn_amount_mean" in detail and "day_end" in detail and "drift" in detail
    assert page.locator(".tauro-browser .tw-detail .tw-lineage svg").count() == 1
    assert (
        page.locator(".tauro-browser .tw-group.tw-selected").first.get_attribute("data-group")
        == "user_txn_daily"
    )

    page.locator('.tauro-browser button[data-action="preview"]').click()  # runs in the kernel
    result = page.locator(".tauro-browser .tw-result.tw-ok")
    result.wait_for(timeout=30_000)
    assert "rows of user_txn_daily" in result.inner_text() and result.locator("tbody tr").count() == 10

    cell = page.locator(".tauro-registry table.tauro-table td").first
    assert cell.evaluate("e => getComputedStyle(e).paddingLeft") == "12px"  # readable in marimo too

    shot = screenshot_dir / "marimo_quickstart.png"
    page.screenshot(path=str(shot), full_page=True)
    widget = screenshot_dir / "marimo_browser_widget.png"
    page.locator(".tauro-browser").first.screenshot(path=str(widget))
    assert shot.stat().st_size > 10_000 and widget.stat().st_size > 10_000
    assert offline_page.blocked == [], f"requests left loopback: {offline_page.blocked}"
    assert offline_page.errors == [], f"page errors: {offline_page.errors}"
