"""FeatureStoreExecutorAdapter: feature store operations inside a pipeline, as in Tauro.

The adapter keeps the outputs of the nodes that ran (``execution_outputs``) and the features
read as inputs (``feature_store_inputs``), and runs each node kind against a
:class:`~tauro_workbench.workbench.Workbench`.

Writes carry a deterministic write id, ``<pipeline>:<node>:<digest of the input rows>``
(order-independent), so running a pipeline again does not repeat a write that landed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from tauro_workbench.exceptions import ConfigurationError, FeatureStoreException
from tauro_workbench.frames import to_dataframe
from tauro_workbench.pipeline.nodes import (
    PythonNode,
    ReadFeaturesNode,
    RefreshFeaturesNode,
    SqlNode,
    WriteFeaturesNode,
)
from tauro_workbench.stores.hybrid import HybridFeatureStore
from tauro_workbench.stores.routing import VirtualFirstPolicy

if TYPE_CHECKING:
    from tauro_workbench.workbench import Workbench

__all__ = ["FeatureStoreExecutorAdapter", "NodeOutcome", "frame_digest"]


@dataclass(frozen=True)
class NodeOutcome:
    """What one node produced: its output (a frame or a result object), rows, and a summary."""

    output: Any
    rows: int | None
    detail: str


def frame_digest(frame: pl.DataFrame) -> str:
    """Return a digest of a frame's schema and rows that ignores the row order.

    Floats count to 12 significant digits, so sums computed in another order (parallel
    aggregation) give the same digest.
    """
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    canonical = frame.with_columns(pl.col(floats).round_sig_figs(12)) if floats else frame
    hashes = canonical.hash_rows(seed=0).sort().rechunk().to_arrow()
    digest = hashlib.sha256(repr(frame.schema).encode())
    digest.update(str(frame.height).encode())
    buffer = hashes.buffers()[1]
    if buffer is not None:
        digest.update(memoryview(buffer))
    return digest.hexdigest()[:16]


class FeatureStoreExecutorAdapter:
    """Run feature store operations for pipeline nodes.

    Args:
        context: A Workbench, a Tauro context (``feature_store_path`` /
            ``feature_store_config``), a repo path or a config; None: the default repo.
        pipeline: The pipeline's name (part of every write id).
        base_dir: Folder that ``file.py:function`` references are relative to.

    Example:
        >>> adapter = FeatureStoreExecutorAdapter(wb, pipeline="daily")               # doctest: +SKIP
        >>> adapter.execution_outputs["users"] = users_df                            # doctest: +SKIP
        >>> adapter.write_features_from_output("user_features", "users", mode="overwrite")  # doctest: +SKIP
    """

    def __init__(
        self, context: Any = None, *, pipeline: str = "pipeline", base_dir: str | Path | None = None
    ) -> None:
        self.workbench = _workbench(context)
        self.pipeline = pipeline
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.execution_outputs: dict[str, Any] = {}
        self.feature_store_inputs: dict[str, pl.DataFrame] = {}

    # -- the Tauro verbs ------------------------------------------------------------------
    def write_features_from_output(
        self,
        feature_group: str,
        output_key: str,
        *,
        mode: str = "append",
        backfill: Mapping[str, datetime] | None = None,
        on_drift: str | None = None,
        write_id: str | None = None,
    ) -> Any:
        """Write the output of node ``output_key`` to ``feature_group`` and return the write record.

        Raises:
            ConfigurationError: If ``output_key`` has no output (yet).
        """
        frame = self._frame(output_key)
        wid = write_id or self.write_id(output_key, frame)
        if backfill is not None:
            return self.workbench.backfill(
                feature_group, frame, start=backfill["start"], end=backfill["end"], write_id=wid
            )
        return self.workbench.write(feature_group, frame, mode=mode, write_id=wid, on_drift=on_drift)

    def read_features_as_input(
        self,
        input_key: str,
        feature_names: Sequence[str] | str | Any,
        *,
        entity_ids: Any = None,
        point_in_time: datetime | None = None,
        store: str | None = None,
    ) -> pl.DataFrame:
        """Read features and keep them as pipeline input ``input_key``; return them."""
        reader = self._reader(store)
        if reader is self.workbench:
            lazy = self.workbench.get_features(
                feature_names, entity_ids=entity_ids, point_in_time=point_in_time
            )
        else:
            lazy = reader.get_features(_names(feature_names), entity_ids, point_in_time)
        frame = lazy.collect()
        self.feature_store_inputs[input_key] = frame
        return frame

    def write_id(self, node: str, frame: pl.DataFrame) -> str:
        """Return the write id of ``node`` writing ``frame`` in this pipeline."""
        wid = f"{self.pipeline}:{node}:{frame_digest(frame)}"
        if len(wid) > 128:  # the store's limit; long node names are hashed
            wid = f"{self.pipeline}:{hashlib.sha256(node.encode()).hexdigest()[:24]}:{frame_digest(frame)}"
        return wid

    # -- nodes ----------------------------------------------------------------------------
    def execute(self, node: Any, inputs: Sequence[Any]) -> NodeOutcome:
        """Run one node with the outputs of its inputs and return what it produced."""
        if isinstance(node, SqlNode):
            return self._sql(node, inputs)
        if isinstance(node, PythonNode):
            return self._python(node, inputs)
        if isinstance(node, WriteFeaturesNode):
            return self._write(node)
        if isinstance(node, ReadFeaturesNode):
            return self._read(node)
        if isinstance(node, RefreshFeaturesNode):
            result = self.workbench.promote(node.feature_group, to=node.to)
            return NodeOutcome(result, result.rows, result.message)
        raise ConfigurationError(f"node {getattr(node, 'name', node)!r} has an unknown type")

    def _sql(self, node: SqlNode, inputs: Sequence[Any]) -> NodeOutcome:
        frames = {name: _as_frame(name, value) for name, value in zip(node.data_inputs, inputs, strict=True)}
        executor = self.workbench.virtual.executor
        frame = executor.execute(node.sql, dialect=node.dialect, frames=frames).collect()
        return NodeOutcome(frame, frame.height, f"{frame.height:,} rows")

    def _python(self, node: PythonNode, inputs: Sequence[Any]) -> NodeOutcome:
        function = self.resolve(node.function)
        output = function(*inputs, **node.params)
        if isinstance(output, pl.LazyFrame):
            output = output.collect()
        rows = output.height if isinstance(output, pl.DataFrame) else None
        return NodeOutcome(output, rows, f"{rows:,} rows" if rows is not None else "done")

    def _write(self, node: WriteFeaturesNode) -> NodeOutcome:
        source = node.data_inputs[0]
        started = datetime.now(UTC)
        frame = self._frame(source)
        wid = self.write_id(node.name, frame)
        window = None if node.backfill is None else node.backfill.model_dump()
        record = self.write_features_from_output(
            node.feature_group, source, mode=node.mode, backfill=window, on_drift=node.on_drift, write_id=wid
        )
        repeated = record.written_at < started
        detail = (
            f"already written (write #{record.id}, table version {record.table_version})"
            if repeated
            else f"wrote {record.rows:,} rows ({record.mode}) -> table version {record.table_version}"
        )
        output: Any = record
        if node.feature_store == "online":
            result = self.workbench.promote(node.feature_group, to="online")
            detail += f"; online: {result.message}"
            output = result
        return NodeOutcome(output, record.rows, detail)

    def _read(self, node: ReadFeaturesNode) -> NodeOutcome:
        features: Any = node.feature_names if node.view is None else self.workbench.feature_view(node.view)
        entities = None if node.entity_ids_source is None else self._frame(node.entity_ids_source)
        if node.historical:
            reader = self._reader(node.feature_store)
            if reader is self.workbench:
                lazy = self.workbench.get_historical_features(
                    entities, features, full_feature_names=node.full_feature_names
                )
            else:
                lazy = reader.get_historical_features(
                    entities, _names(features), full_feature_names=node.full_feature_names
                )
            frame = lazy.collect()
            self.feature_store_inputs[node.name] = frame
        else:
            frame = self.read_features_as_input(
                node.name,
                features,
                entity_ids=entities,
                point_in_time=node.point_in_time,
                store=node.feature_store,
            )
        return NodeOutcome(frame, frame.height, f"{frame.height:,} rows x {frame.width} columns")

    # -- helpers --------------------------------------------------------------------------
    def _frame(self, key: str) -> pl.DataFrame:
        if key not in self.execution_outputs:
            raise ConfigurationError(
                f"output {key!r} was not produced; outputs so far: {sorted(self.execution_outputs) or '(none)'}"
            )
        return _as_frame(key, self.execution_outputs[key])

    def _reader(self, store: str | None) -> Any:
        if store is None:
            return self.workbench
        if store == "virtualized":
            return self._virtual_first
        return {"materialized": self.workbench.materialized, "hybrid": self.workbench.hybrid}[store]

    @cached_property
    def _virtual_first(self) -> HybridFeatureStore:
        # "virtualized" computes the virtual groups on demand and reads the others from their
        # tables, so a node may mix both (as the Tauro design's pipeline example does).
        wb = self.workbench
        return HybridFeatureStore(wb.materialized, wb.virtual, config=wb.config, policy=VirtualFirstPolicy())

    def resolve(self, function: str | Callable[..., Any]) -> Callable[..., Any]:
        """Return the callable a python node names (``module:function`` or ``file.py:function``).

        Raises:
            ConfigurationError: If the module, file or function does not exist.
        """
        if callable(function):
            return function
        target, _, attr = function.partition(":")
        try:
            if target.endswith(".py"):
                module = _load_file(self.base_dir / target)
            else:
                module = importlib.import_module(target)
        except ImportError as err:
            raise ConfigurationError(f"cannot import {target!r} for function {function!r}: {err}") from err
        value = getattr(module, attr, None)
        if not callable(value):
            raise ConfigurationError(f"{target!r} has no function {attr!r}")
        return value  # type: ignore[no-any-return]


def _workbench(context: Any) -> Workbench:
    from tauro_workbench.config import FeatureStoreConfig, resolve_config
    from tauro_workbench.workbench import Workbench

    if isinstance(context, Workbench):
        return context
    if context is None or isinstance(context, (str, Path, FeatureStoreConfig, Mapping)):
        return Workbench(context)
    return Workbench(resolve_config(context))


def _names(features: Any) -> Any:
    # the stores take feature names; a FeatureView is expanded to its names
    return (
        list(features.features)
        if hasattr(features, "features") and not isinstance(features, str)
        else features
    )


def _as_frame(name: str, value: Any) -> pl.DataFrame:
    if isinstance(value, pl.DataFrame):
        return value
    try:
        return to_dataframe(value)
    except (FeatureStoreException, TypeError) as err:
        raise ConfigurationError(
            f"output of {name!r} is a {type(value).__name__}, not a frame; it cannot feed another node"
        ) from err


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise ImportError(f"no file {str(path)!r}")
    name = "_tauro_pipeline_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
