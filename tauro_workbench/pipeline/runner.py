"""Run a pipeline: nodes in dependency order, stop at the first failure, safe to run again.

Example:
    >>> run = run_pipeline(wb, "sample_data/repo/pipeline.yaml")   # doctest: +SKIP
    >>> [n.status for n in run.nodes]                              # doctest: +SKIP
    ['ok', 'ok', ...]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from loguru import logger
from pydantic import ValidationError

from tauro_workbench.exceptions import FeatureStoreException, PipelineError, SpecError
from tauro_workbench.pipeline.adapter import FeatureStoreExecutorAdapter
from tauro_workbench.pipeline.nodes import PipelineSpec, load_pipeline

__all__ = ["NodeRun", "PipelineRun", "run_pipeline"]


@dataclass(frozen=True)
class NodeRun:
    """One node's run: ``status`` is ``ok`` or ``failed``; ``detail`` says what it did."""

    name: str
    type: str
    status: str
    rows: int | None
    seconds: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "rows": self.rows,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PipelineRun:
    """A finished run: every node's :class:`NodeRun` in run order, and their outputs."""

    pipeline: str
    nodes: list[NodeRun]
    seconds: float
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)

    def output(self, node: str) -> Any:
        """Return what node ``node`` produced (a frame, a write record, a promotion result)."""
        return self.outputs[node]

    def frame(self, node: str) -> pl.DataFrame:
        """Return the frame node ``node`` produced."""
        value = self.outputs[node]
        if not isinstance(value, pl.DataFrame):
            raise TypeError(f"node {node!r} produced a {type(value).__name__}, not a frame")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "pipeline": self.pipeline,
            "seconds": round(self.seconds, 4),
            "nodes": [n.to_dict() for n in self.nodes],
        }


def run_pipeline(
    workbench: Any,
    pipeline: PipelineSpec | Mapping[str, Any] | str | os.PathLike[str],
    *,
    inputs: Mapping[str, Any] | None = None,
    on_node: Callable[[NodeRun], None] | None = None,
) -> PipelineRun:
    """Run every node of ``pipeline`` in dependency order against ``workbench``.

    Args:
        workbench: A :class:`~tauro_workbench.workbench.Workbench` (or what
            :class:`FeatureStoreExecutorAdapter` accepts: a Tauro context, a repo path).
        pipeline: A :class:`PipelineSpec`, a dict with ``nodes`` (node dicts or node objects),
            or the path of a pipeline YAML file.
        inputs: Frames given by name (e.g. rows a Tauro context produced); nodes read them like
            node outputs. A YAML pipeline declares their names under ``inputs:``; a dict or
            spec without that list gets the names given here.
        on_node: Called with each finished node (the CLI prints progress with it).

    Returns:
        The run, with each node's status and output.

    Raises:
        SpecError: If the pipeline file or dict is invalid, or a declared input is not
            given (nothing runs).
        PipelineError: At the first failing node, naming it; the nodes after it do not run.
            Writes that finished stay written and are not repeated by the next run.

    Example:
        >>> run_pipeline(wb, {"nodes": [sql_node("ids", "SELECT 1 AS user_id")]}).frame("ids")  # doctest: +SKIP
    """
    given = dict(inputs or {})
    spec = _spec(pipeline, sorted(given))
    missing = [name for name in spec.inputs if name not in given]
    if missing:
        raise SpecError(f"<pipeline {spec.name!r}>", f"inputs {missing} are declared but not given")
    adapter = FeatureStoreExecutorAdapter(workbench, pipeline=spec.name, base_dir=spec.base_dir)
    adapter.execution_outputs.update(given)
    started = time.perf_counter()
    done: list[NodeRun] = []
    for node in spec.order():
        frames = [adapter.execution_outputs[name] for name in node.data_inputs]
        node_started = time.perf_counter()
        try:
            outcome = adapter.execute(node, frames)
        except Exception as err:
            seconds = time.perf_counter() - node_started
            failed = NodeRun(node.name, node.type, "failed", None, seconds, _reason(err))
            if on_node is not None:
                on_node(failed)
            raise PipelineError(spec.name, node.name, _reason(err), completed=[n.name for n in done]) from err
        adapter.execution_outputs[node.name] = outcome.output
        run = NodeRun(
            node.name,
            node.type,
            "ok",
            outcome.rows,
            time.perf_counter() - node_started,
            outcome.detail,
        )
        logger.info("pipeline {} node {}: {}", spec.name, node.name, outcome.detail)
        done.append(run)
        if on_node is not None:
            on_node(run)
    outputs = {k: v for k, v in adapter.execution_outputs.items() if k not in given}
    return PipelineRun(spec.name, done, time.perf_counter() - started, outputs)


def _spec(
    pipeline: PipelineSpec | Mapping[str, Any] | str | os.PathLike[str], given: list[str]
) -> PipelineSpec:
    if isinstance(pipeline, (str, os.PathLike)):
        return load_pipeline(Path(pipeline))
    if isinstance(pipeline, PipelineSpec):
        if not given or pipeline.inputs:
            return pipeline
        data: dict[str, Any] = {**dict(pipeline), "nodes": list(pipeline.nodes)}
    else:
        data = dict(pipeline)
    if not data.get("inputs"):
        data["inputs"] = given
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"])
        raise SpecError(
            "<pipeline dict>", str(first["msg"]).removeprefix("Value error, "), key=key or None
        ) from None


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    # a user function's own error keeps its type, which says what went wrong
    return text if isinstance(err, FeatureStoreException) else f"{type(err).__name__}: {text}"
