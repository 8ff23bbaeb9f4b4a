"""README.md stays true to the code: its tour runs, and the commands it shows exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _python_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


def test_the_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(_python_block_after("## A tour"), "README tour", "exec"), namespace)  # noqa: S102
    training = namespace["store"].get_historical_features(  # type: ignore[attr-defined]
        namespace["labels"], ["user_features.age"]
    ).collect()
    assert training["age"].to_list() == [34, 51]
    assert (tmp_path / "feature_repo" / "registry.db").exists()


def test_the_two_commands_are_shown_and_ci_runs_the_test_command() -> None:
    assert 'pip install -e ".[notebook]" && python notebooks/quickstart.py' in README
    test_command = 'pip install -e ".[dev]" && python -m pytest'
    assert test_command in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install -q -e ".[dev]"' in ci and "\npython -m pytest" in ci
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
