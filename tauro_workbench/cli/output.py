"""What the CLI prints and reads: text or JSON output, data files, repo access."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "Output",
    "UsageError",
    "create_repo",
    "json_value",
    "open_repo",
    "read_frame",
    "record_dict",
    "table",
    "verdict",
]

FORMATS = ".parquet, .csv, .json, .ndjson or a Delta table folder"


class UsageError(Exception):
    """A command was called wrongly (exit code 2)."""


# -- output -------------------------------------------------------------------------------
class Output:
    """Prints results as text or JSON; the one place output is written."""

    def __init__(self, *, as_json: bool, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet

    def result(self, data: Any, text: str | Callable[[], str]) -> None:
        """Print ``data`` as JSON, or ``text`` for humans."""
        if self.as_json:
            print(json.dumps(data, default=json_value, indent=2))
        else:
            print(text() if callable(text) else text)

    def note(self, text: str) -> None:
        """Print a human-only line (progress, hints) to stderr unless quiet or JSON."""
        if not (self.quiet or self.as_json):
            print(text, file=sys.stderr)


def json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def table(frame: Any, *, rows: int = 20) -> str:
    import polars as pl

    with pl.Config(tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=160):
        return str(frame)


# -- repo access and data files --------------------------------------------------------------------------
def open_repo(args: argparse.Namespace) -> Any:
    """Open an existing repo (nothing is created)."""
    from tauro_workbench.workbench import Workbench

    return Workbench.open(args.repo)


def create_repo(args: argparse.Namespace) -> Any:
    from tauro_workbench.workbench import Workbench

    return Workbench(args.repo)


def read_frame(path: Path) -> Any:
    import polars as pl

    if not path.exists():
        raise UsageError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            if not (path / "_delta_log").is_dir():
                raise UsageError(f"{path}: a folder that is not a Delta table; use {FORMATS}")
            return pl.read_delta(str(path))
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, try_parse_dates=True)
        if suffix == ".json":
            return pl.read_json(path)
        if suffix in (".ndjson", ".jsonl"):
            return pl.read_ndjson(path)
    except UsageError:
        raise
    except Exception as err:  # polars and pyarrow raise many types for unreadable files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"{path}: cannot be read ({first})") from err
    raise UsageError(f"{path}: unknown file type {suffix or '(none)'}; use {FORMATS}")


def verdict(record: Any) -> str | None:
    drift = (record.details or {}).get("drift") or {}
    return drift.get("verdict") if isinstance(drift, dict) else None


def record_dict(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "group": record.group,
        "version": record.version,
        "mode": record.mode,
        "rows": record.rows,
        "table_version": record.table_version,
        "written_at": record.written_at,
        "drift_verdict": verdict(record),
        "write_id": (record.details or {}).get("write_id"),
    }
