"""``tauro-wb``: the Workbench from a terminal, for scheduled jobs and quick looks.

This is the only module that prints, adds log sinks or draws progress bars. Every command
takes ``--repo PATH`` (default ``$TAURO_FS_STORAGE_PATH`` or ``./feature_repo``), ``--json``
(one JSON document on stdout), ``-v`` (library log; ``-vv`` debug; tracebacks) and ``-q``
(results only). Exit codes: 0 ok; 1 failure (unknown group, failed node, unhealthy store, a
store error); 2 usage (bad flags, a missing or unreadable input file, invalid YAML).

Read-only commands on a path with no repo fail (exit 1) and create nothing; only ``init``,
``apply`` and ``demo`` create a repo. See ``tauro-wb --help`` for the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from loguru import logger

from tauro_workbench import __version__
from tauro_workbench.cli import commands
from tauro_workbench.cli.output import FORMATS, Output, UsageError
from tauro_workbench.exceptions import (
    FeatureGroupNotFoundError,
    FeatureStoreException,
    PipelineError,
    RepositoryNotFoundError,
    SpecError,
)
from tauro_workbench.progress import enable_progress

__all__ = ["main"]


# -- arguments ----------------------------------------------------------------------------
def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or time such as 2026-06-01T00:00"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--repo",
        default=argparse.SUPPRESS,
        help="feature repo (default: $TAURO_FS_STORAGE_PATH or ./feature_repo)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="log library activity (-vv: debug)"
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print results only"
    )

    parser = argparse.ArgumentParser(
        prog="tauro-wb",
        description="Work with a tauro_workbench feature repo from a terminal.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"tauro-wb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, text: str, func: Callable[..., int], aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=text, description=text, parents=[common], aliases=list(aliases))
        cmd.set_defaults(func=func)
        return cmd

    cmd = add("init", "create a feature repo (optionally with a tauro.yaml config)", commands.init_command)
    cmd.add_argument("--config", type=Path, help="a tauro.yaml to copy into the repo (validated first)")
    cmd.add_argument("--force", action="store_true", help="replace a different tauro.yaml")

    sources = add("sources", "add or list data sources", commands.sources_list_command)
    ssub = sources.add_subparsers(dest="action", required=True, metavar="ACTION")
    cmd = ssub.add_parser("add", help="register a Parquet, Delta or CSV source", parents=[common])
    cmd.set_defaults(func=commands.sources_add_command)
    cmd.add_argument("name", help="dotted name such as silver.users")
    cmd.add_argument("location", help="file, folder or glob")
    cmd.add_argument("--format", choices=["parquet", "delta", "csv"])
    cmd.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="reader option")
    ssub.add_parser("list", help="list the sources", parents=[common]).set_defaults(
        func=commands.sources_list_command
    )

    add("register", "register the feature group(s) of a YAML file", commands.register_command).add_argument(
        "file", type=Path
    )
    cmd = add(
        "apply",
        "apply a folder of YAML definitions (sources, groups, virtual, views)",
        commands.apply_command,
    )
    cmd.add_argument("folder", type=Path)
    cmd.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    add("list", "list the feature groups", commands.list_command, aliases=["groups"])
    cmd = add("show", "show a group: schema, SQL and lineage", commands.show_command)
    cmd.add_argument("group")
    cmd.add_argument("--version", dest="group_version", type=int, default=None, help="a schema version")

    cmd = add("write", "write rows from a file to a group", commands.write_command)
    cmd.add_argument("group")
    cmd.add_argument("file", type=Path, help=FORMATS)
    cmd.add_argument("--mode", choices=["append", "overwrite", "merge"], default="append")
    cmd.add_argument("--write-id", help="idempotency key: a write with a known id is not repeated")
    cmd.add_argument("--on-drift", choices=["ignore", "warn", "block"])
    cmd = add("backfill", "replace the [start, end) event-time window of a group", commands.backfill_command)
    cmd.add_argument("group")
    cmd.add_argument("file", type=Path, help=FORMATS)
    cmd.add_argument("--start", type=_when, required=True)
    cmd.add_argument("--end", type=_when, required=True)
    cmd.add_argument("--write-id")
    cmd = add("promote", "promote a group to materialized or online", commands.promote_command)
    cmd.add_argument("group")
    cmd.add_argument("--to", choices=["materialized", "online"], default="materialized")

    cmd = add("get", "read the latest features of some entities", commands.get_command)
    cmd.add_argument("features", nargs="+", help="group.feature names (or a view name)")
    cmd.add_argument("--entity", action="append", default=[], metavar="KEY=V1,V2", help="entity ids")
    cmd.add_argument("--entities", type=Path, help=f"a file of entity key columns ({FORMATS})")
    cmd.add_argument("--at", type=_when, help="point in time (ISO; naive = UTC)")
    cmd.add_argument("--online", action="store_true", help="read from the online store")
    cmd.add_argument("--limit", type=int, default=20, help="rows shown (text output)")
    cmd = add("training-set", "build a point-in-time training set", commands.training_set_command)
    cmd.add_argument("entities", type=Path, help=f"entity rows with event times ({FORMATS})")
    cmd.add_argument("features", help="comma-separated group.feature names, or a view name")
    cmd.add_argument("-o", "--output", type=Path, required=True, help="out.parquet or out.csv")
    cmd.add_argument("--full-feature-names", action="store_true")

    add("drift", "show the latest drift report of a group", commands.drift_command).add_argument("group")
    cmd = add("lineage", "show where a group comes from and what uses it", commands.lineage_command)
    cmd.add_argument("group")
    cmd.add_argument("--format", choices=["text", "json", "svg"], default="text")
    cmd.add_argument("-o", "--output", type=Path, help="write to a file instead of stdout")
    cmd.add_argument("--upstream", type=int, default=3)
    cmd.add_argument("--downstream", type=int, default=3)
    cmd = add("history", "list writes with their drift verdicts", commands.history_command)
    cmd.add_argument("group", nargs="?")
    cmd.add_argument("--limit", type=int, default=50)
    add("health", "check the registry and the stores (exit 1 if unhealthy)", commands.health_command)
    cmd = add("run", "run a pipeline YAML (nodes in dependency order)", commands.run_command)
    cmd.add_argument("pipeline", type=Path)
    cmd.add_argument(
        "--input", action="append", default=[], metavar="NAME=FILE", help=f"a declared input ({FORMATS})"
    )
    add("demo", "build a demo repo from sample_data/ (definitions + pipeline)", commands.demo_command)
    return parser


# -- main ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tauro-wb`` with ``argv`` (default: the process arguments); return the exit code.

    Example:
        >>> main(["list", "--repo", "feature_repo", "--json"])  # doctest: +SKIP
        0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # argparse printed the usage error (or --help/--version)
        return int(done.code or 0)
    for name, default in (("repo", None), ("json", False), ("verbose", 0), ("quiet", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    out = Output(as_json=args.json, quiet=args.quiet)
    sink = _start_logging(args.verbose, args.quiet or args.json)
    bars = sys.stderr.isatty() and not (args.quiet or args.json)
    enable_progress(bars)  # long library work (backfills, large syncs) draws only for a terminal
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = int(args.func(args, out))
            finally:
                for item in caught:
                    out.note(f"warning: {item.message}")
        return code
    except (UsageError, SpecError) as err:
        return _fail(out, args, err, 2)
    except FeatureStoreException as err:
        return _fail(out, args, err, 1)
    except Exception as err:  # a bug or an environment problem: still one line, traceback on -v
        return _fail(out, args, err, 1)
    finally:
        _stop_logging(sink)
        enable_progress(False)


def _fail(out: Output, args: argparse.Namespace, err: BaseException, code: int) -> int:
    message = _message(err, args)
    if args.verbose:
        traceback.print_exception(err, file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    if out.as_json:
        print(json.dumps({"error": message, "exit_code": code}))
    return code


def _message(err: BaseException, args: argparse.Namespace) -> str:
    from tauro_workbench.apply import one_line

    if isinstance(err, FeatureGroupNotFoundError):
        known = ", ".join(err.available) or "none"
        if err.version is not None:
            return f"unknown feature group {err.group!r} version {err.version}; registered versions: {known}"
        return f"unknown feature group {err.group!r}; registered: {known} (see 'tauro-wb list')"
    if isinstance(err, RepositoryNotFoundError):
        return f"no feature repo at {err.path} (create one with 'tauro-wb init' or 'tauro-wb apply')"
    if isinstance(err, PipelineError):
        return f"pipeline {err.pipeline!r} failed at node {err.node!r}: " + one_line(err).split(": ", 1)[-1]
    if isinstance(err, FeatureStoreException):
        text = one_line(err)
        hint = err.hint and err.hint.replace('on_drift="warn"', "--on-drift warn")
        if isinstance(err, SpecError) and hint:
            return f"{text} ({hint})"
        # hints written for Python callers name methods; the CLI leaves those out
        return f"{text} ({hint})" if hint and not re.search(r"\w\(", hint) else text
    if isinstance(err, UsageError):
        return str(err)
    first = str(err).strip().splitlines()
    detail = f": {first[0]}" if first else ""
    return f"{type(err).__name__}{detail} (run with -v for the traceback)"


def _start_logging(verbose: int, quiet: bool) -> int | None:
    if quiet:
        return None
    with contextlib.suppress(ValueError):
        logger.remove(0)  # loguru's default sink would print every level
    level = "WARNING" if verbose == 0 else "INFO" if verbose == 1 else "DEBUG"
    logger.enable("tauro_workbench")
    return logger.add(sys.stderr, level=level, format="{level: <7} {message}", filter="tauro_workbench")


def _stop_logging(sink: int | None) -> None:
    if sink is not None:
        logger.remove(sink)
    logger.disable("tauro_workbench")
