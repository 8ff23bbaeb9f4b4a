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


def _python_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


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
    _run("### Materialized features and training sets", ns)
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
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install -q -e ".[dev]"' in ci and "\npython -m pytest" in ci
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
