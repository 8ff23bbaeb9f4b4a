"""The ``tauro-wb`` command line against a real registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tauro_workbench.cli import main
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    metadata = FeatureStoreMetadata(tmp_path)
    metadata.register_feature_group(
        FeatureGroupSchema(
            name="user_features",
            entity_keys=["user_id"],
            timestamp_key="ts",
            features=[FeatureSchema("age", "INT")],
        )
    )
    metadata.record_write("user_features", 1, mode="append", rows=42, table_version=0)
    metadata.close()
    return tmp_path


def test_groups_lists_registered_groups(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["groups", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "user_features" in out and "1 features" in out and "last write: never" not in out


def test_show_prints_yaml_and_history_lists_writes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "user_features", "--repo", str(repo)]) == 0
    assert "entity_keys:\n- user_id" in capsys.readouterr().out
    assert main(["history", "user_features", "--repo", str(repo)]) == 0
    assert "42 rows" in capsys.readouterr().out


def test_unknown_group_is_a_clear_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "nope", "--repo", str(repo)]) == 2
    err = capsys.readouterr().err
    assert "'nope' is not registered" in err and "user_features" in err


def test_console_script_runs(repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tauro_workbench.cli", "health", "--repo", str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert ": ok" in done.stdout
