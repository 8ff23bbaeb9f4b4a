"""The benchmark runner: every bench module exposes run(scale), and the table reads right."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "benchmarks"


@pytest.fixture(autouse=True)
def _bench_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCH.glob("bench_*.py")))
def test_every_bench_module_has_run(module: str) -> None:
    assert callable(importlib.import_module(module).run)


def test_table_shows_ratio_against_the_fastest_baseline() -> None:
    harness = importlib.import_module("harness")
    run = importlib.import_module("run")
    row = harness.Measurement("pit", "uniform", 1.2, {"slow": 2.0, "fast": 1.0}, target_ratio=1.3)
    assert row.best_baseline == ("fast", 1.0) and row.ratio == pytest.approx(1.2) and row.passed
    table = run.format_table([row])
    assert "| pit | uniform | 1.2000 | fast | 1.0000 | 1.20x | <= 1.3x | yes |" in table.splitlines()
    assert sys.modules["harness"] is harness
