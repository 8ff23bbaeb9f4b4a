"""The ``tauro-wb`` command line: inspect a feature repository from a terminal.

This is the only module that prints or adds log sinks. Commands::

    tauro-wb groups  [--repo PATH]          list feature groups, versions and last data write
    tauro-wb show    GROUP [--repo PATH] [--version N]   print a group's schema as YAML
    tauro-wb history GROUP [--repo PATH]    list the writes of a group
    tauro-wb health  [--repo PATH]          check that the registry answers
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loguru import logger

from tauro_workbench import __version__
from tauro_workbench.exceptions import FeatureStoreException

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tauro-wb", description="Inspect a tauro_workbench feature repository."
    )
    parser.add_argument("--version", action="version", version=f"tauro-wb {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library activity to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str, *, group: bool = False) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        if group:
            cmd.add_argument("group", help="feature group name")
        cmd.add_argument(
            "--repo", default=None, help="feature repository (default: config / ./feature_store)"
        )
        return cmd

    add("groups", "list feature groups")
    add("show", "print a group's schema as YAML", group=True).add_argument(
        "--version", type=int, default=None
    )
    add("history", "list the writes of a group", group=True)
    add("health", "check that the registry answers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tauro-wb`` with ``argv`` (default: the process arguments); return the exit code."""
    args = _parser().parse_args(argv)
    if args.verbose:
        logger.remove()
        logger.add(sys.stderr, level="DEBUG")
        logger.enable("tauro_workbench")
    try:
        return _run(args)
    except FeatureStoreException as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from tauro_workbench.config import resolve_config
    from tauro_workbench.registry import FeatureStoreMetadata

    config = resolve_config(storage_path=args.repo)
    metadata = FeatureStoreMetadata(config=config)
    if args.command == "groups":
        names = metadata.list_feature_groups()
        if not names:
            print(f"no feature groups in {config.storage_path}")
        for name in names:
            schema = metadata.get_feature_group(name)
            last = metadata.get_last_updated(name)
            versions = ",".join(str(v) for v in metadata.list_versions(name))
            print(f"{name}\tv{versions}\t{len(schema.features)} features\tlast write: {last or 'never'}")
    elif args.command == "show":
        print(metadata.get_feature_group(args.group, args.version).to_yaml(), end="")
    elif args.command == "history":
        for record in metadata.list_writes(args.group):
            print(
                f"#{record.id}\tv{record.version}\t{record.written_at:%Y-%m-%d %H:%M:%S}\t{record.mode}\t"
                f"{record.rows} rows\ttable version {record.table_version}"
            )
    elif args.command == "health":
        healthy = metadata.health_check()
        print(f"registry {metadata.location}: {'ok' if healthy else 'FAILED'}")
        return 0 if healthy else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
