"""Run the benchmarks: ``python tests/benchmarks/run.py [--scale quick|full] [--only NAME]``.

Every ``bench_*.py`` module beside this file defines ``run(scale: str) -> list[Measurement]``.
The runner prints one table of ratios (ours / fastest baseline of the same run) and writes
``tests/benchmarks/results/<module>.json`` and ``results/latest.json`` (every module's newest rows).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Measurement  # noqa: E402


def format_table(rows: list[Measurement]) -> str:
    """Return a Markdown table of the measurements."""
    lines = [
        "| benchmark | case | ours (s) | fastest baseline | baseline (s) | ratio | target | ok |",
        "|---|---|---:|---|---:|---:|---:|:-:|",
    ]
    for m in rows:
        best = m.best_baseline
        name, secs = best if best else ("-", float("nan"))
        ratio = f"{m.ratio:.2f}x" if m.ratio is not None else "-"
        target = f"<= {m.target_ratio}x" if m.target_ratio is not None else "-"
        ok = {True: "yes", False: "NO", None: "-"}[m.passed]
        lines.append(
            f"| {m.benchmark} | {m.case} | {m.ours_s:.4f} | {name} | {secs:.4f} | {ratio} | {target} | {ok} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=["quick", "full"], default="full")
    parser.add_argument("--only", action="append", help="module name (e.g. bench_point_in_time)")
    args = parser.parse_args(argv)
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m in args.only]
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    every: list[Measurement] = []
    for name in modules:
        print(f"== {name} ({args.scale})", flush=True)
        rows = importlib.import_module(name).run(args.scale)
        every.extend(rows)
        (results_dir / f"{name}.json").write_text(
            json.dumps([r.to_dict() for r in rows], indent=2, default=str)
        )
        print(format_table(rows), flush=True)
        module = sys.modules[name]
        if hasattr(module, "markdown"):  # a module's own, more detailed table
            print(module.markdown(rows), flush=True)
    # latest.json gathers the newest result of every benchmark module, not only those run now
    gathered = [
        row for path in sorted(results_dir.glob("bench_*.json")) for row in json.loads(path.read_text())
    ]
    summary = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "scale": args.scale,
        "results": gathered,
    }
    (results_dir / "latest.json").write_text(json.dumps(summary, indent=2, default=str))
    print("\n" + format_table(every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
