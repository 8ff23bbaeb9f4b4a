"""The ``tauro-wb`` commands: each takes the parsed arguments and the output, returns the exit code."""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tauro_workbench.cli.output import (
    Output,
    UsageError,
    create_repo,
    json_value,
    open_repo,
    read_frame,
    record_dict,
    table,
    verdict,
)
from tauro_workbench.exceptions import FeatureGroupNotFoundError, FeatureStoreException


# -- commands -----------------------------------------------------------------------------
def init_command(args: argparse.Namespace, out: Output) -> int:
    from tauro_workbench.config import DEFAULT_REPO
    from tauro_workbench.specs import load_config

    root = Path(args.repo or DEFAULT_REPO)
    target = root / "tauro.yaml"
    if args.config is not None:
        load_config(args.config)  # validated before anything is created
        text = args.config.read_text(encoding="utf-8")
        if target.is_file() and target.read_text(encoding="utf-8") != text and not args.force:
            raise UsageError(f"{target} exists and differs from {args.config}; pass --force to replace it")
        root.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    existed = (root / "registry.db").is_file()
    with create_repo(argparse.Namespace(**{**vars(args), "repo": str(root)})) as wb:
        path = wb.path
    state = "already initialized" if existed else "initialized"
    out.result(
        {"repo": str(path), "created": not existed, "config": str(target) if target.is_file() else None},
        f"{state} feature repo {path}" + (f" (config {target})" if target.is_file() else ""),
    )
    return 0


def sources_add_command(args: argparse.Namespace, out: Output) -> int:
    options: dict[str, Any] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--option {item!r}: use KEY=VALUE")
        options[key] = value
    if args.format:
        options["format"] = args.format
    with open_repo(args) as wb:
        source = wb.add_source(args.name, args.location, **options)
    out.result(
        {"name": source.name, "format": source.format, "location": source.location},
        f"added source {source.name} ({source.format}: {source.location})",
    )
    return 0


def sources_list_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        sources = wb.sources()
    rows = [{"name": s.name, "format": s.format, "location": s.location} for s in sources]
    text = "\n".join(f"{r['name']}\t{r['format']}\t{r['location']}" for r in rows) or "no sources"
    out.result(rows, text)
    return 0


def register_command(args: argparse.Namespace, out: Output) -> int:
    from collections.abc import Mapping

    from tauro_workbench.specs import GroupSpec, load_yaml, parse

    doc = load_yaml(args.file)
    items = doc.data if isinstance(doc.data, list) else [doc.data]
    specs = []
    for i, item in enumerate(items):
        at = (i,) if isinstance(doc.data, list) else ()
        if not isinstance(item, Mapping):
            raise doc.error("must be a mapping describing a feature group (or a list of them)", at)
        specs.append(parse(doc, GroupSpec, at=at, data=item).to_schema())
    results = []
    with open_repo(args) as wb:
        for schema in specs:
            try:
                same = wb.get_group(schema.name, schema.version) == schema
            except FeatureGroupNotFoundError:
                same = False
            wb.register(schema)
            results.append({"group": schema.name, "version": schema.version, "changed": not same})
    out.result(
        results,
        "\n".join(
            f"{'registered' if r['changed'] else 'unchanged'} {r['group']} v{r['version']}" for r in results
        ),
    )
    return 0


def apply_command(args: argparse.Namespace, out: Output) -> int:
    from tauro_workbench.apply import plan_apply
    from tauro_workbench.exceptions import RepositoryNotFoundError
    from tauro_workbench.specs import load_definitions

    definitions = load_definitions(args.folder)
    if args.dry_run:
        try:
            wb = open_repo(args)
        except RepositoryNotFoundError:
            wb = None  # a dry run creates nothing: everything would be created
        try:
            plan = plan_apply(wb, definitions)
        finally:
            if wb is not None:
                wb.close()
        out.result({**plan.to_dict(), "applied": False}, lambda: _plan_text(plan, "Plan"))
        return 0
    with create_repo(args) as wb:
        plan = plan_apply(wb, definitions)
        plan.execute(wb)
    out.result({**plan.to_dict(), "applied": True}, lambda: _plan_text(plan, "Applied"))
    return 0


def _plan_text(plan: Any, title: str) -> str:
    lines = [str(c) for c in plan.changes]
    summary = plan.summary() if plan.pending else "no changes"
    return "\n".join([*lines, f"{title}: {summary}."])


def list_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        virtual = set(wb.virtual.list_virtual_groups())
        rows = []
        for schema in wb.groups():
            last = wb.history(schema.name, limit=1)
            rows.append(
                {
                    "group": schema.name,
                    "version": schema.version,
                    "features": len(schema.features),
                    "kind": _kind(schema.name in virtual, bool(last)),
                    "last_write": last[0].written_at if last else None,
                    "description": schema.description,
                }
            )
    text = "\n".join(
        f"{r['group']}\tv{r['version']}\t{r['features']} features\t{r['kind']}\tlast write: "
        + (f"{r['last_write']:%Y-%m-%d %H:%M:%S}" if r["last_write"] else "never")
        for r in rows
    )
    out.result(rows, text or "no feature groups")
    return 0


def _kind(is_virtual: bool, written: bool) -> str:
    if is_virtual:
        return "virtual+materialized" if written else "virtual"
    return "materialized" if written else "empty"


def show_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        schema = wb.get_group(args.group, args.group_version)
        try:
            queries: dict[str, str] | None = dict(wb.virtual.get_definition(schema.name).queries)
        except FeatureStoreException:
            queries = None
        graph = wb.lineage(schema.name)
    data = {"schema": schema.to_dict(), "sql": queries, "lineage": graph.to_dict()}

    def text() -> str:
        parts = [schema.to_yaml().rstrip()]
        for feature, sql in (queries or {}).items():
            title = "sql" if feature == "*" else f"sql of {feature}"
            parts.append(f"{title}:\n" + textwrap.indent(sql.strip(), "  "))
        parts.append("lineage:\n" + graph.to_text().rstrip())
        return "\n\n".join(parts)

    out.result(data, text)
    return 0


def _write_summary(record: Any) -> str:
    found = verdict(record)
    return (
        f"wrote {record.rows:,} rows to {record.group} v{record.version} ({record.mode}) -> "
        f"table version {record.table_version}" + (f"; drift: {found}" if found else "")
    )


def write_command(args: argparse.Namespace, out: Output) -> int:
    frame = read_frame(args.file)
    with open_repo(args) as wb:
        record = wb.write(args.group, frame, mode=args.mode, write_id=args.write_id, on_drift=args.on_drift)
    out.result(record_dict(record), lambda: _write_summary(record))
    return 0


def backfill_command(args: argparse.Namespace, out: Output) -> int:
    if args.end <= args.start:
        raise UsageError(f"--end {args.end.isoformat()} must be after --start {args.start.isoformat()}")
    frame = read_frame(args.file)
    with open_repo(args) as wb:
        record = wb.backfill(args.group, frame, start=args.start, end=args.end, write_id=args.write_id)
    out.result(record_dict(record), lambda: _write_summary(record))
    return 0


def promote_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        result = wb.promote(args.group, to=args.to)
    out.result(result, result.message)
    return 0


def _features(wb: Any, names: Sequence[str]) -> Any:
    """Feature names, or the view called ``names[0]`` when it is one bare name."""
    if len(names) == 1 and "." not in names[0] and "," not in names[0]:
        try:
            return wb.feature_view(names[0])
        except FeatureStoreException:
            return list(names)  # a bare feature name: resolution errors name the candidates
    return [n.strip() for item in names for n in item.split(",") if n.strip()]


def _entity_ids(args: argparse.Namespace) -> Any:
    if args.entities is not None and args.entity:
        raise UsageError("give --entity or --entities, not both")
    if args.entities is not None:
        return read_frame(args.entities)
    ids: dict[str, list[Any]] = {}
    for item in args.entity:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise UsageError(f"--entity {item!r}: use KEY=V1,V2")
        ids[key] = [int(v) if re.fullmatch(r"-?\d+", v) else v for v in values.split(",")]
    lengths = {len(v) for v in ids.values()}
    if len(lengths) > 1:
        raise UsageError("every --entity key needs the same number of values (composite keys)")
    return ids or None


def get_command(args: argparse.Namespace, out: Output) -> int:
    import polars as pl

    ids = _entity_ids(args)
    with open_repo(args) as wb:
        features = _features(wb, args.features)
        if args.online:
            if not isinstance(ids, dict) or not ids:
                raise UsageError("--online needs --entity KEY=VALUE")
            keys = {k: v[0] if len(v) == 1 else v for k, v in ids.items()}
            value = wb.get_online_features(features, entity_keys=keys)
            frame = value if isinstance(value, pl.DataFrame) else pl.DataFrame([value])
        else:
            frame = wb.get_features(features, entity_ids=ids, point_in_time=args.at).collect()
    out.result(frame.to_dicts(), lambda: table(frame, rows=args.limit))
    return 0


def training_set_command(args: argparse.Namespace, out: Output) -> int:
    if args.output.suffix.lower() not in (".parquet", ".csv"):
        raise UsageError(f"-o {args.output}: use a .parquet or .csv file")
    entities = read_frame(args.entities)
    with open_repo(args) as wb:
        features = _features(wb, [args.features])
        result = wb.training_set(entities, features, full_feature_names=args.full_feature_names)
    frame = result.frame
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix.lower() == ".csv":
        frame.write_csv(args.output)
    else:
        frame.write_parquet(args.output)
    data = {
        "output": str(args.output),
        "rows": frame.height,
        "columns": frame.columns,
        "match_rate": dict(result.match_rate),
        "table_versions": dict(result.table_versions),
        "seconds": result.seconds,
    }
    rates = ", ".join(f"{g} {r:.0%}" for g, r in result.match_rate.items())
    out.result(
        data,
        f"wrote {frame.height:,} rows x {frame.width} columns to {args.output}"
        + (f"; match rate: {rates}" if rates else ""),
    )
    return 0


def drift_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        found = wb.drift(args.group)
    report = found
    reports = getattr(found, "reports", None)
    if reports is not None and not hasattr(found, "verdict"):
        report = reports[-1] if reports else None
    if report is None:
        out.result({"group": args.group, "report": None}, f"no drift report for {args.group} (no writes yet)")
        return 0

    def text() -> str:
        psi = getattr(report, "max_psi", None)
        lines = [
            f"{report.group} v{report.version}: {report.verdict} (write #{report.write_id}, "
            f"{report.rows:,} rows vs {report.reference})"
            + (f"; max PSI {psi:.3f}" if psi is not None else "")
        ]
        for feature in report.features:
            stat = f"PSI {feature.psi:.3f}" if feature.psi is not None else ""
            reasons = f" ({', '.join(feature.reasons)})" if feature.reasons else ""
            lines.append(f"  {feature.feature}: {feature.verdict} {stat}{reasons}".rstrip())
        return "\n".join(lines)

    out.result(report.to_dict(), text)
    return 0


def lineage_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        wb.get_group(args.group)  # an unknown group is an error, not an empty graph
        graph = wb.lineage(args.group, upstream=args.upstream, downstream=args.downstream)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        text = json.dumps(graph.to_dict(), default=json_value, indent=2)
    elif fmt == "svg":
        text = graph.to_svg()
    else:
        text = graph.to_text()
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        out.note(f"wrote {fmt} lineage of {args.group} to {args.output}")
    else:
        print(text)
    return 0


def history_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        if args.group is not None:
            wb.get_group(args.group)
        records = wb.history(args.group, limit=args.limit)
    rows = [record_dict(r) for r in records]
    text = "\n".join(
        f"#{r['id']}\t{r['group']} v{r['version']}\t{r['written_at']:%Y-%m-%d %H:%M:%S}\t{r['mode']}\t"
        f"{r['rows']:,} rows\ttable version {r['table_version']}\tdrift: {r['drift_verdict'] or '-'}"
        for r in rows
    )
    out.result(rows, text or "no writes")
    return 0


def health_command(args: argparse.Namespace, out: Output) -> int:
    with open_repo(args) as wb:
        report = wb.health_check()
        location = str(wb.path)
    healthy = bool(report)
    data = {
        "repo": location,
        "healthy": healthy,
        "checks": dict(report.checks),
        "details": dict(report.details),
    }
    lines = [
        f"{name}: {'ok' if ok else 'FAILED'}"
        + (f" ({report.details[name]})" if name in report.details else "")
        for name, ok in report.checks.items()
    ]
    out.result(data, "\n".join([f"repo {location}: {'healthy' if healthy else 'UNHEALTHY'}", *lines]))
    if not healthy:
        print("error: the store is unhealthy (see the failed checks above)", file=sys.stderr)
    return 0 if healthy else 1


def run_command(args: argparse.Namespace, out: Output) -> int:
    from tauro_workbench.pipeline import load_pipeline

    spec = load_pipeline(args.pipeline)
    inputs: dict[str, Any] = {}
    for item in args.input:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise UsageError(f"--input {item!r}: use NAME=FILE")
        if name not in spec.inputs:
            raise UsageError(f"--input {name!r}: the pipeline declares inputs {spec.inputs or '(none)'}")
        inputs[name] = read_frame(Path(file))
    missing = [name for name in spec.inputs if name not in inputs]
    if missing:
        raise UsageError(f"the pipeline needs --input for {', '.join(missing)} (NAME=FILE)")
    with open_repo(args) as wb:
        run = _run_spec(wb, spec, out, inputs)
    out.result(
        run.to_dict(), lambda: f"pipeline {run.pipeline}: {len(run.nodes)} nodes ok in {run.seconds:.2f} s"
    )
    return 0


def _run_spec(wb: Any, spec: Any, out: Output, inputs: dict[str, Any] | None = None) -> Any:
    from tqdm import tqdm

    from tauro_workbench.pipeline import NodeRun, run_pipeline

    show_bar = sys.stderr.isatty() and not (out.quiet or out.as_json)
    bar = tqdm(total=len(spec.nodes), desc=spec.name, unit="node", disable=not show_bar, leave=False)
    failed: list[NodeRun] = []

    def progress(node: NodeRun) -> None:
        bar.update(1)
        if node.status == "failed":
            failed.append(node)
        line = f"{node.status:<6} {node.name} ({node.type}) {node.detail} [{node.seconds:.2f} s]"
        if show_bar:
            bar.write(line, file=sys.stderr)
        else:
            out.note(line)

    try:
        return run_pipeline(wb, spec, inputs=inputs, on_node=progress)
    finally:
        bar.close()


def demo_command(args: argparse.Namespace, out: Output) -> int:
    from tauro_workbench.apply import plan_apply
    from tauro_workbench.config import DEFAULT_REPO
    from tauro_workbench.pipeline import load_pipeline
    from tauro_workbench.quickstart import demo_repo, sample_data_path
    from tauro_workbench.specs import load_definitions

    definitions_dir = sample_data_path(Path(__file__).resolve().parent).parent / "repo"
    root = demo_repo(args.repo or DEFAULT_REPO)
    definitions = load_definitions(definitions_dir)
    pipeline = load_pipeline(definitions_dir / "pipeline.yaml")
    with create_repo(argparse.Namespace(**{**vars(args), "repo": str(root)})) as wb:
        plan = plan_apply(wb, definitions)
        plan.execute(wb)
        out.note(_plan_text(plan, "Applied"))
        run = _run_spec(wb, pipeline, out)
        groups = [g.name for g in wb.groups()]
    data = {"repo": str(root), "groups": groups, "applied": plan.to_dict(), "run": run.to_dict()}
    out.result(
        data,
        f"demo repo {root}: {len(groups)} groups ({', '.join(groups)}); pipeline {run.pipeline} ran "
        f"{len(run.nodes)} nodes in {run.seconds:.2f} s\n"
        f"try: tauro-wb list --repo {root}; tauro-wb show user_purchases_daily --repo {root}",
    )
    return 0
