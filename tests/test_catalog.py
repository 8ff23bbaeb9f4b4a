"""Catalog: the registry browser's state and actions, headless, over a real Workbench."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
from tauro_workbench.catalog import Catalog
from tauro_workbench.exceptions import ConfigurationError, FeatureGroupNotFoundError
from tauro_workbench.workbench import Workbench
from tests import display_objects as objects

SQL = (
    "SELECT user_id, CAST(day_end AS TIMESTAMPTZ) AS day_end, count(*) AS purchase_count,"
    " sum(amount) AS purchase_amount FROM silver.purchases GROUP BY ALL"
)


@pytest.fixture
def workbench(tmp_path: Path) -> Iterator[Workbench]:
    purchases = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "day_end": pl.Series([objects.T0] * 4),
            "amount": [10.0, 5.0, 7.5, 1.0],
        }
    )
    wb = Workbench(tmp_path / "repo")
    wb.add_source("silver.purchases", purchases)
    wb.register(objects.purchases_schema())
    wb.define_virtual("user_purchases_daily", sql=SQL)
    users = FeatureGroupSchema(
        name="user_features",
        entity_keys=["user_id"],
        description="Profile of a user",
        tags={"team": "growth"},
        features=[FeatureSchema("plan", DataType.STRING, FeatureType.CATEGORICAL)],
    )
    wb.register(users)
    wb.write("user_features", pl.DataFrame({"user_id": [1, 2], "plan": ["free", "pro"]}))
    yield wb
    wb.close()


def test_lists_every_group_with_kind_rows_and_last_write(workbench: Workbench) -> None:
    catalog = Catalog(workbench)
    rows = {g["name"]: g for g in catalog.state["groups"]}
    assert set(rows) == {"user_features", "user_purchases_daily"} and catalog.state["total"] == 2
    assert rows["user_features"]["kind"] == "materialized" and rows["user_features"]["rows"] == 2
    assert (
        rows["user_features"]["last_write"].endswith("UTC")
        and rows["user_features"]["drift"] == "no_reference"
    )
    assert rows["user_purchases_daily"]["kind"] == "virtual" and rows["user_purchases_daily"]["rows"] is None
    json.loads(catalog.to_json())  # the widget's state is plain JSON
    assert "user_purchases_daily" in catalog._repr_html_()


def test_search_matches_names_descriptions_tags_and_features(workbench: Workbench) -> None:
    catalog = Catalog(workbench)
    assert catalog.search("PURCHASE") == ["user_purchases_daily"]
    assert catalog.search("growth") == ["user_features"]
    assert catalog.search("profile plan") == ["user_features"]
    assert catalog.search("profile amount") == []
    assert catalog.search("") == ["user_features", "user_purchases_daily"]


def test_select_shows_schema_lineage_writes_and_drift(workbench: Workbench) -> None:
    catalog = Catalog(workbench)
    detail = catalog.select("user_features")
    assert detail["entity_keys"] == ["user_id"] and detail["features"][0]["name"] == "plan"
    assert detail["tags"] == {"team": "growth"} and [w["rows"] for w in detail["writes"]] == [2]
    assert detail["drift"]["verdict"] == "no_reference"
    assert detail["lineage_svg"].startswith("<svg") and "user_features" in detail["lineage_svg"]
    virtual = catalog.select("user_purchases_daily")
    assert (
        virtual["sql"] == [SQL] and "silver.purchases" in virtual["lineage_svg"] and virtual["writes"] == []
    )
    with pytest.raises(FeatureGroupNotFoundError, match="user_features"):
        catalog.select("nope")
    assert catalog.state["selected"] == "user_purchases_daily"


def test_preview_and_promote_run_in_the_kernel_and_report_back(workbench: Workbench) -> None:
    catalog = Catalog(workbench)
    with pytest.raises(ConfigurationError, match="Select a feature group"):
        catalog.preview()
    catalog.select("user_purchases_daily")
    shown = catalog.preview(limit=2)
    assert shown["ok"] and shown["columns"] == ["user_id", "day_end", "purchase_count", "purchase_amount"]
    assert len(shown["rows"]) == 2 and "silver.purchases" in shown["sql"] and shown["route"] == "virtual"
    promoted = catalog.promote(to="materialized")
    assert promoted["ok"] and "3" in promoted["message"]
    entry = next(g for g in catalog.state["groups"] if g["name"] == "user_purchases_daily")
    assert entry["rows"] == 3 and catalog.state["detail"]["writes"][0]["rows"] == 3
    assert entry["kind"] == "virtual + materialized"
    assert any(n in catalog.state["detail"]["lineage_svg"] for n in ("write #", "promote"))
    assert workbench.history("user_purchases_daily")[-1].rows == 3
    again = catalog.promote(to="materialized")
    assert (
        again["ok"]
        and workbench.history("user_purchases_daily")[-1].id
        == workbench.history("user_purchases_daily")[0].id
    )


def test_handle_reports_errors_instead_of_raising(workbench: Workbench) -> None:
    catalog = Catalog(workbench)
    state = catalog.handle({"action": "select", "group": "nope"})
    assert state["result"]["ok"] is False and "FeatureGroupNotFoundError" in state["result"]["message"]
    assert catalog.handle({"action": "preview"})["result"]["message"].startswith("ConfigurationError: Select")
    assert "Unknown browser action 'dance'" in catalog.handle({"action": "dance"})["result"]["message"]
    revision = catalog.state["revision"]
    assert catalog.handle({"action": "search", "query": "user"})["revision"] == revision + 1
    assert catalog.handle({"action": "select", "group": "user_features"})["selected"] == "user_features"
    assert catalog.handle({"action": "preview", "limit": 1})["result"]["rows"] == [[1, "free"]]


def test_refresh_picks_up_new_groups_and_drops_deleted_selection(workbench: Workbench) -> None:
    catalog = Catalog(workbench)
    catalog.select("user_features")
    workbench.register(
        FeatureGroupSchema(name="late", entity_keys=["id"], features=[FeatureSchema("x", DataType.INT)])
    )
    assert "late" in [g["name"] for g in catalog.refresh()]
    card = catalog.card("user_features")
    assert "2" in card._repr_html_() and "GroupCard('user_features'" in repr(card)
