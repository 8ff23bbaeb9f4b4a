"""The registry browser widget, driven headless through its traits (the browser test clicks it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tauro_workbench.catalog import Catalog
from tauro_workbench.notebook import browse
from tauro_workbench.notebook.widgets import STATIC, RegistryBrowser
from tauro_workbench.workbench import Workbench
from tests import display_objects as objects


@pytest.fixture
def workbench(tmp_path: Path) -> Iterator[Workbench]:
    wb = Workbench(tmp_path / "repo")
    wb.register(objects.users_schema())
    wb.write(
        "user_features",
        pl.DataFrame(
            {
                "user_id": [1, 2],
                "updated_at": [objects.T0] * 2,
                "age": [30, 40],
                "country": ["ES", "FR"],
                "plan": ["free", "pro"],
            }
        ),
    )
    yield wb
    wb.close()


def test_a_request_from_the_browser_updates_the_state_it_draws(workbench: Workbench) -> None:
    widget = browse(workbench)
    assert isinstance(widget, RegistryBrowser) and widget.state["selected"] is None
    widget.request = {"action": "select", "group": "user_features", "seq": "1"}
    assert widget.state["selected"] == "user_features" and widget.state["detail"]["entity_keys"] == [
        "user_id"
    ]
    widget.request = {"action": "preview", "limit": 1, "seq": "2"}
    assert widget.state["result"]["ok"] and len(widget.state["result"]["rows"]) == 1
    widget.request = {"action": "select", "group": "nope", "seq": "3"}
    assert widget.state["result"]["ok"] is False
    assert widget.state is not widget.catalog.state  # a copy, so traitlets sees every change


def test_browse_starts_from_a_group_or_a_query_and_wb_browse_is_the_same(workbench: Workbench) -> None:
    assert browse(workbench, group="user_features").state["detail"]["name"] == "user_features"
    assert browse(workbench, query="zzz").state["groups"] == []
    assert isinstance(workbench.browse(), RegistryBrowser)
    assert browse(Catalog(workbench)).catalog.state["total"] == 1


def test_the_javascript_and_css_ship_in_the_package_and_fetch_nothing() -> None:
    js = (STATIC / "browser.js").read_text()
    css = (STATIC / "browser.css").read_text()
    assert "export default" in js and "model.save_changes()" in js and ".tauro-browser" in css
    for text in (js, css):
        assert "http://" not in text and "https://" not in text and "import " not in text.split("export")[0]
    assert str(RegistryBrowser._esm) == js and str(RegistryBrowser._css) == css  # read from the package
