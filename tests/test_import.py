"""`import tauro_workbench` is light: no optional backend is imported, and it is fast."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["pyspark", "redis", "altair", "anywidget", "marimo"]

PROBE = """
import json, sys, time
start = time.perf_counter()
import tauro_workbench
elapsed = time.perf_counter() - start
print(json.dumps({"elapsed": elapsed, "modules": sorted(sys.modules)}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_is_light_and_fast() -> None:
    runs = [_probe() for _ in range(3)]
    for run in runs:
        modules = set(run["modules"])  # type: ignore[arg-type]
        loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
        assert loaded == [], f"import tauro_workbench imported optional backends: {loaded}"
    best = min(float(run["elapsed"]) for run in runs)  # type: ignore[arg-type]
    assert best < 0.5, f"import tauro_workbench took {best:.3f} s (best of 3)"


def test_compat_base_module_is_light() -> None:
    code = "import sys, tauro_workbench.base; print(sorted(m for m in sys.modules if m.startswith('tauro_workbench')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "tauro_workbench.registry" not in out.stdout
