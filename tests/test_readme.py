"""README.md stays true to the code: every Python block runs, and the commands it shows exist."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tests.conftest import RedisServer

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _python_block_after(heading: str, index: int = 0) -> str:
    section = README.split(heading, 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) > index, f"no python block {index} after {heading!r}"
    return str(blocks[index])


def _run_second(heading: str, namespace: dict[str, Any]) -> None:
    exec(compile(_python_block_after(heading, 1), f"README {heading} (2)", "exec"), namespace)


def _run(heading: str, namespace: dict[str, Any], *, replace: tuple[str, str] | None = None) -> None:
    code = _python_block_after(heading)
    if replace is not None:
        assert replace[0] in code
        code = code.replace(*replace)
    exec(compile(code, f"README {heading}", "exec"), namespace)


def _users(ages: list[int], day: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": list(range(1, len(ages) + 1)),
            "event_timestamp": [datetime(2026, 1, day)] * len(ages),
            "age": pl.Series(ages, dtype=pl.Int32),
            "region": ["eu"] * len(ages),
        }
    )


def test_every_python_block_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    ns: dict[str, Any] = {}

    _run("## A tour", ns)
    tour = ns["training"].frame
    assert tour.columns == ["user_id", "ts", "label", "amount_sum"] and tour["amount_sum"].null_count() == 0
    assert ns["wb"].promote("purchases_daily", to="online").changed is False  # "unchanged"
    assert ns["wb"].health_check()

    ns["labels"] = pl.DataFrame({"user_id": [1, 2], "ts": [datetime(2026, 3, 1)] * 2})
    _run("### The Workbench", ns)
    assert ns["view"].features == ("user_profile.plan", "user_profile.country")
    ns["wb"].close()

    _run("### Using the stores directly: materialized features and training sets", ns)
    training = ns["store"].get_historical_features(ns["labels"], ["user_features.age"]).collect()
    assert training["age"].to_list() == [34, 51]

    txn = FeatureGroupSchema(
        name="txn_features",
        entity_keys=["user_id"],
        timestamp_key="event_timestamp",
        features=[FeatureSchema("amount_7d", "DOUBLE")],
    )
    ns["store"].register_features(txn)
    ns["store"].write_features(
        "txn_features",
        pl.DataFrame(
            {
                "user_id": [1, 2],
                "event_timestamp": [datetime(2026, 1, 3)] * 2,
                "amount_7d": [10.0, 20.0],
            }
        ),
    )
    ns.update(df=_users([35, 52], 3), fixes=_users([36], 3), history=_users([30, 50], 10))
    _run_second("### Using the stores directly: materialized features and training sets", ns)
    assert ns["training"].collect_schema().names() == [
        "user_id",
        "event_timestamp",
        "label",
        "age",
        "amount_7d",
    ]
    assert ns["training"].collect()["amount_7d"].to_list() == [10.0, 20.0]

    ns["purchase_features"] = FeatureGroupSchema(
        name="purchase_features",
        entity_keys=["user_id"],
        features=[FeatureSchema("purchase_count", "BIGINT")],
    )
    _run("### Virtual features", ns)
    assert ns["virtual"].get_features(["purchase_count"], entity_ids={"user_id": [1]}).collect().height == 1

    _run("### Online serving", ns, replace=("redis://127.0.0.1:6379/0", redis_server.url))
    assert ns["store"].get_online_features(["age", "region"], entity_keys={"user_id": 1}) == {
        "age": 30,
        "region": "eu",
    }  # the backfilled Jan 10 row is the latest

    _run("### Drift", ns)
    assert ns["report"].group == "user_features"


def test_the_two_commands_are_shown_and_ci_runs_the_test_command() -> None:
    assert 'pip install -e ".[notebook]" && python notebooks/quickstart.py' in README
    assert 'pip install -e ".[dev]" && python -m pytest' in README
    assert "chromium" in README.split("## A tour")[0]  # the browser tests need it


def test_every_cli_command_the_readme_shows_exists() -> None:
    from tauro_workbench.cli import _parser

    shown = set(re.findall(r"^tauro-wb ([a-z-]+)", README, re.M))
    shown |= set(re.findall(r"`(init|sources|register|write|backfill|get|drift|history|demo)[ `]", README))
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert shown and shown <= set(commands), shown - set(commands)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install -q -e ".[dev]"' in ci and "\npython -m pytest" in ci
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
