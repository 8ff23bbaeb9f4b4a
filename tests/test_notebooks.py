"""The notebooks run: marimo ones headless as scripts (and linted), the Jupyter one in a real kernel.

Each marimo notebook is run with ``python notebooks/<name>.py`` in a subprocess, the README's
"main job" command, with its feature repo in ``tmp_path``; the printed summary lines are the
contract. ``drift.py`` is also executed by ``marimo export session`` to check that its charts
are cell outputs (Vega-Lite mime bundles, rendered by marimo without a CDN).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tauro_workbench.exceptions import ConfigurationError
from tauro_workbench.quickstart import DEMO_MARKER, demo_repo, sample_data_path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MARIMO_NOTEBOOKS = ["quickstart", "training_set", "drift"]
STORAGE_ENV = "TAURO_FS_STORAGE_PATH"


def clean_env(storage_path: Path | None) -> dict[str, str]:
    """Return the environment without TAURO_FS_* options, with the repo path when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAURO_FS_")}
    if storage_path is not None:
        env[STORAGE_ENV] = str(storage_path)
    return env


def run_notebook(name: str, *, storage_path: Path | None, cwd: Path = ROOT) -> str:
    """Run ``notebooks/<name>.py`` headless; return its stdout (fail with stderr if it fails)."""
    result = subprocess.run(
        [sys.executable, str(NOTEBOOKS / f"{name}.py")],
        cwd=cwd,
        env=clean_env(storage_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{name}.py failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def line(stdout: str, prefix: str) -> str:
    """Return the first stdout line starting with ``prefix``."""
    found = [x for x in stdout.splitlines() if x.startswith(prefix)]
    assert found, f"no line starting with {prefix!r} in:\n{stdout}"
    return found[0]


def without_timings(stdout: str) -> list[str]:
    """Return the lines of a run with timings and write times removed (they change run to run)."""
    patterns = [r"\d+(\.\d+)? (s|ms|us)\b", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"]
    lines = []
    for text in stdout.splitlines():
        for pattern in patterns:
            text = re.sub(pattern, "<t>", text)
        lines.append(text)
    return lines


def export_session(name: str, tmp_path: Path) -> list[dict[str, object]]:
    """Execute ``notebooks/<name>.py`` with ``marimo export session``; return its cell outputs."""
    notebook = tmp_path / f"{name}.py"
    shutil.copy(NOTEBOOKS / f"{name}.py", notebook)  # the session snapshot is written next to it
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "marimo",
            "export",
            "session",
            "--force-overwrite",
            "--no-sandbox",
            str(notebook),
        ],
        cwd=ROOT,
        env=clean_env(tmp_path / "repo"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    session = json.loads((tmp_path / "__marimo__" / "session" / f"{name}.py.json").read_text())
    outputs = [o for cell in session["cells"] for o in cell["outputs"]]
    assert not [o for o in outputs if o["type"] == "error"], outputs
    return outputs


def html_outputs(outputs: list[dict[str, object]]) -> str:
    return " ".join(str(v) for o in outputs for k, v in dict(o.get("data", {})).items() if k == "text/html")  # type: ignore[arg-type]


def test_quickstart_runs_headless_and_prints_what_it_did(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    out = run_notebook("quickstart", storage_path=repo)
    assert f"[repo] {repo} (mode hybrid" in out
    assert "silver.users (2,000 rows)" in line(out, "[sources]")
    assert line(out, "[groups]") == "[groups] registered user_features, user_txn_daily"
    assert "2,000 rows" in line(out, "[write] user_features")
    for month in ("2026-02", "2026-03", "2026-04", "2026-05"):
        assert line(out, f"[write] user_txn_daily {month}").endswith("drift check: ok")
    assert line(out, "[write] user_txn_daily 2026-01").endswith("drift check: no_reference")
    assert line(out, "[write] user_txn_daily 2026-06").endswith("drift check: drift")
    assert "5 rows via virtual on duckdb" in line(out, "[preview]")
    assert "Materialized 31439 rows" in line(out, "[promote]") and "again: changed=False" in out
    training = line(out, "[training set]")
    assert "9,101 label rows -> 9,101 rows x 9 columns" in training and "user_features 100%" in training
    assert "Synced 2000 entities" in line(out, "[online]")
    assert "(matches the offline read)" in line(out, "[online] user 42")
    assert line(out, "[lineage]").startswith("[lineage] lineage of user_purchases_daily (group)")
    assert "drifted ['txn_amount_sum', 'txn_amount_mean']" in line(out, "[drift]")
    assert line(out, "[browser]") == "[browser] 3 groups"
    assert (repo / "registry.db").is_file() and (repo / "offline" / "user_txn_daily" / "v1").is_dir()


def test_quickstart_uses_its_own_demo_repo_and_runs_twice_alike(tmp_path: Path) -> None:
    first = run_notebook("quickstart", storage_path=None, cwd=tmp_path)
    second = run_notebook("quickstart", storage_path=None, cwd=tmp_path)
    assert "[repo] feature_repo_quickstart " in first
    assert (tmp_path / "feature_repo_quickstart" / DEMO_MARKER).is_file()
    assert not (tmp_path / "feature_repo").exists()  # the README tour's repo is never touched
    assert without_timings(first) == without_timings(second)


def test_quickstart_outputs_are_the_rich_displays(tmp_path: Path) -> None:
    outputs = export_session("quickstart", tmp_path)
    html = html_outputs(outputs)
    for css_class in (
        "tauro-group",
        "tauro-preview",
        "tauro-promotion",
        "tauro-route",
        "tauro-training-set",
        "tauro-lineage",
        "tauro-drift-report",
        "tauro-registry",
    ):
        assert f'class="tauro-display {css_class}"' in html, css_class
    assert "tauro-lineage-svg" in html and "tauro-psi-chart" not in html  # marimo draws the Altair chart
    assert "marimo-anywidget" in html  # the registry browser
    assert html.count("application/vnd.vegalite.v6+json") == 1  # wb.drift's chart, in its marimo view
    mimes = [m for o in outputs for m in dict(o.get("data", {}))]  # type: ignore[arg-type]
    assert len([m for m in mimes if m.startswith("application/vnd.vegalite")]) == 1  # feature_over_time
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def test_training_set_shows_leaks_of_naive_joins_and_none_of_ours(tmp_path: Path) -> None:
    out = run_notebook("training_set", storage_path=tmp_path / "repo")
    assert "360 exact duplicates" in line(out, "[data]")
    leaks = re.search(r"([\d,]+) take a value from the future", line(out, "[naive 1]"))
    assert leaks is not None and int(leaks.group(1).replace(",", "")) > 1000
    naive_range = line(out, "[naive 2]")
    assert re.search(r"\([1-9][\d,]* labels lost, [1-9]\d* duplicated rows\)", naive_range), naive_range
    assert "5,000 rows for 5,000 labels: 0 future values, 0 past the ttl" in line(out, "[point in time]")
    assert line(out, "[check]").endswith("True")
    late = line(out, "[late events]")
    assert re.search(r"^\[late events\] [1-9]\d* of 5,000 rows differ", late), late
    assert line(out, "[time travel]").endswith("is identical: True")


def test_drift_notebook_flags_june_and_blocks_with_a_pinned_baseline(tmp_path: Path) -> None:
    out = run_notebook("drift", storage_path=tmp_path / "repo")
    assert (
        line(out, "[drift]") == "[drift] verdict per month: ['no_reference', 'ok', 'ok', 'ok', 'ok', 'drift']"
    )
    assert line(out, "[alert]").startswith("[alert] card_transactions: drift in amount")
    assert "2026-06 72." in line(out, "[profiles]")
    assert "drifted ['amount']" in line(out, "[june]")
    assert "[gate] blocked against pinned window [2026-01-01" in out
    assert "table still at version 6" in line(out, "[gate] table")


def test_drift_notebook_charts_are_cell_outputs(tmp_path: Path) -> None:
    outputs = export_session("drift", tmp_path)
    mimes = [m for o in outputs for m in dict(o.get("data", {}))]  # type: ignore[arg-type]
    vega = [m for m in mimes if m.startswith("application/vnd.vegalite")]
    html = html_outputs(outputs)
    assert len(vega) >= 2 or html.count("marimo-vega") >= 2  # PSI over time and the June overview
    assert "tauro-drift-report" in html and "txn" not in html and "amount" in html


@pytest.mark.parametrize("name", MARIMO_NOTEBOOKS)
def test_marimo_check_is_clean(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "marimo", "check", "--strict", str(NOTEBOOKS / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_jupyter_quickstart_is_committed_without_outputs_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    for key in [k for k in os.environ if k.startswith("TAURO_FS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv(STORAGE_ENV, str(tmp_path / "repo"))  # the kernel inherits it

    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()

    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    bundles = [o.get("data", {}) for o in outputs]
    html = [b["text/html"] for b in bundles if "text/html" in b]
    months = next(h for h in html if "table_version" in h and "tauro-display" not in h)
    verdicts = re.findall(r"<td>(?:&quot;)?(no_reference|ok|warning|drift)(?:&quot;)?</td>", months)
    assert verdicts == ["no_reference", "ok", "ok", "ok", "ok", "drift"]
    joined = " ".join(html)
    for css_class in (
        "tauro-group",
        "tauro-preview",
        "tauro-promotion",
        "tauro-training-set",
        "tauro-lineage",
        "tauro-drift-report",
        "tauro-registry",
        "tauro-health",
    ):
        assert f'class="tauro-display {css_class}"' in joined, css_class
    assert any("tauro-drift-report" in h and "txn_amount_mean" in h for h in html)
    assert any("<svg" in b.get("image/svg+xml", "") for b in bundles)
    assert any("application/vnd.jupyter.widget-view+json" in b for b in bundles)  # wb.browse()
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "training set: 9,101 rows for 9,101 labels" in streams and "synced 1,960 users" in streams
    online = [b["text/plain"] for b in bundles if b.get("text/plain", "").startswith("{'txn_count'")]
    assert online == ["{'txn_count': 1, 'txn_amount_sum': 36.69}"]
    assert (tmp_path / "repo" / DEMO_MARKER).is_file()


def test_demo_repo_resets_only_demo_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    repo = demo_repo("feature_repo")
    assert repo == Path("feature_repo") and (tmp_path / "feature_repo" / DEMO_MARKER).is_file()
    (repo / "registry.db").write_text("left by the previous run")
    assert list(demo_repo("feature_repo").iterdir()) == [repo / DEMO_MARKER]
    assert (demo_repo("feature_repo", reset=False) / DEMO_MARKER).is_file()

    real = tmp_path / "real_repo"
    real.mkdir()
    (real / "registry.db").write_text("precious")
    monkeypatch.setenv(STORAGE_ENV, str(real))
    with pytest.raises(ConfigurationError, match="not emptied"):
        demo_repo("feature_repo")
    assert (real / "registry.db").read_text() == "precious"


def test_sample_data_path_searches_the_start_folder_then_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sample_data_path(NOTEBOOKS) == ROOT / "sample_data" / "silver"
    monkeypatch.chdir(ROOT / "tests")
    assert sample_data_path(tmp_path) == ROOT / "sample_data" / "silver"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="No sample_data/silver folder"):
        sample_data_path(tmp_path)
