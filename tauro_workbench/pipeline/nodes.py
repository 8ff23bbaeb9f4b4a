"""Pipeline nodes: the Tauro ``nodes:`` list, as pydantic models that YAML and Python share.

A node has a ``name``, a ``type``, ``inputs`` (nodes whose output it receives) and
``dependencies`` (nodes that must finish first). The types:

- ``sql``: a query over the registered sources and the outputs of its inputs (by node name);
- ``python``: a callable (``module:function``, ``file.py:function`` relative to the pipeline
  file, or a Python callable) called with its inputs' outputs in order and ``params``;
- ``write_features``: writes its input to a feature group (``input_source`` names it);
- ``read_features``: reads features, for the entities of ``entity_ids_source`` when given;
- ``refresh_features``: promotes a group to ``materialized`` or ``online``.

The node functions build them, with the names of the Tauro design::

    pipeline = {"nodes": [
        write_features_node(name="materialize_user_features", feature_store="materialized",
                            feature_group="user_features", input_source="process_user_data"),
        read_features_node(name="fetch_training_features", feature_names=["user_features.age"],
                           entity_ids_source="load_entity_ids"),
    ]}
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.schema import validate_identifier
from tauro_workbench.specs import Spec, YamlDocument, load_yaml, parse

__all__ = [
    "Node",
    "PipelineSpec",
    "PythonNode",
    "ReadFeaturesNode",
    "RefreshFeaturesNode",
    "SqlNode",
    "WriteFeaturesNode",
    "load_pipeline",
    "python_node",
    "read_features_node",
    "refresh_features_node",
    "sql_node",
    "write_features_node",
]


class _Node(Spec):
    name: str
    description: str = ""
    inputs: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        try:
            return validate_identifier(value, "Node name")
        except SchemaValidationError as err:
            raise ValueError(f"{err.problems[0]} ({err.hint})" if err.hint else err.problems[0]) from None

    @property
    def data_inputs(self) -> list[str]:
        """The nodes whose outputs this node receives, in order."""
        return list(self.inputs)

    @property
    def upstream(self) -> list[str]:
        """Every node that must finish before this one (inputs, then dependencies)."""
        return list(dict.fromkeys([*self.data_inputs, *self.dependencies]))


class SqlNode(_Node):
    """A SQL step: sources by name (``silver.users``) and its inputs by node name."""

    type: Literal["sql"] = "sql"
    sql: str
    dialect: Literal["duckdb", "spark"] | None = None


class PythonNode(_Node):
    """A Python step: ``function(*input_outputs, **params)`` returns a frame (or None)."""

    type: Literal["python"] = "python"
    function: str | Callable[..., Any]
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("function")
    @classmethod
    def _reference(cls, value: str | Callable[..., Any]) -> str | Callable[..., Any]:
        if isinstance(value, str) and value.count(":") != 1:
            raise ValueError("must be 'package.module:function' or 'file.py:function'")
        return value


class BackfillWindow(Spec):
    """The ``[start, end)`` event-time window a backfill replaces."""

    start: datetime
    end: datetime


class WriteFeaturesNode(_Node):
    """Write the input to a feature group (``feature_store: online`` also publishes it online)."""

    type: Literal["write_features"] = "write_features"
    feature_group: str
    input_source: str | None = None
    feature_store: Literal["materialized", "online"] = "materialized"
    mode: Literal["append", "overwrite", "merge"] = "append"
    backfill: BackfillWindow | None = None
    on_drift: Literal["ignore", "warn", "block"] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> WriteFeaturesNode:
        if len(self.data_inputs) != 1:
            raise ValueError("needs exactly one input: set 'input_source' (or one 'inputs' entry)")
        if self.backfill is not None and self.mode != "append":
            raise ValueError("a backfill replaces its window; leave 'mode' at append")
        return self

    @property
    def data_inputs(self) -> list[str]:
        return [self.input_source, *self.inputs] if self.input_source else list(self.inputs)


class ReadFeaturesNode(_Node):
    """Read features (names or a view); for the entities of ``entity_ids_source`` when given.

    With ``historical: true`` the entity rows carry an event time and each gets the features
    as of that time (point in time); else the latest values (or those at ``point_in_time``).
    ``feature_store`` picks a store (default: the Workbench's routing).
    """

    type: Literal["read_features"] = "read_features"
    feature_names: list[str] | None = None
    view: str | None = None
    feature_store: Literal["materialized", "virtualized", "hybrid"] | None = None
    entity_ids_source: str | None = None
    point_in_time: datetime | None = None
    historical: bool = False
    full_feature_names: bool = False

    @model_validator(mode="after")
    def _what(self) -> ReadFeaturesNode:
        if (self.feature_names is None) == (self.view is None):
            raise ValueError("give exactly one of 'feature_names' or 'view'")
        if self.historical and self.entity_ids_source is None:
            raise ValueError("historical: true needs 'entity_ids_source' (the entity rows with their times)")
        if self.historical and self.point_in_time is not None:
            raise ValueError("historical reads take each row's own time; drop 'point_in_time'")
        return self

    @property
    def data_inputs(self) -> list[str]:
        return [self.entity_ids_source, *self.inputs] if self.entity_ids_source else list(self.inputs)


class RefreshFeaturesNode(_Node):
    """Promote a group (virtual to materialized, or materialized to online); a no-op if current."""

    type: Literal["refresh_features"] = "refresh_features"
    feature_group: str
    to: Literal["materialized", "online"] = "materialized"


AnyNode = SqlNode | PythonNode | WriteFeaturesNode | ReadFeaturesNode | RefreshFeaturesNode
Node = Annotated[AnyNode, Field(discriminator="type")]
_BY_TYPE: dict[str, type[AnyNode]] = {
    "sql": SqlNode,
    "python": PythonNode,
    "write_features": WriteFeaturesNode,
    "read_features": ReadFeaturesNode,
    "refresh_features": RefreshFeaturesNode,
}


PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PipelineSpec(Spec):
    """A pipeline: a name and its nodes (any order; they run in dependency order).

    Attributes:
        inputs: Names of the frames given at run time (``run_pipeline(..., inputs=)``, or
            ``tauro-wb run --input NAME=FILE``); nodes use them like node outputs.
        base_dir: Folder that ``file.py:function`` references are relative to (the pipeline
            file's folder when loaded from YAML).
    """

    name: str = "pipeline"
    description: str = ""
    inputs: list[str] = Field(default_factory=list)
    nodes: list[Node] = Field(min_length=1)
    base_dir: str | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # the name is part of every write id
        if not PIPELINE_NAME.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _graph(self) -> PipelineSpec:
        problem = graph_problem(self.nodes, external=self.inputs)
        if problem is not None:
            index, _key, text = problem
            raise ValueError(f"node {self.nodes[index].name!r}: {text}")
        return self

    def node(self, name: str) -> AnyNode:
        """Return the node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def order(self) -> list[AnyNode]:
        """Return the nodes in a dependency order (ties keep the file order)."""
        done: set[str] = set()
        ordered: list[AnyNode] = []
        pending = list(self.nodes)
        while pending:
            ready = next(n for n in pending if all(u in done or u in self.inputs for u in n.upstream))
            ordered.append(ready)
            done.add(ready.name)
            pending.remove(ready)
        return ordered


def graph_problem(nodes: Sequence[_Node], *, external: Sequence[str] = ()) -> tuple[int, str, str] | None:
    """Return ``(node index, key, problem)`` for a duplicate name, unknown reference or cycle.

    ``external`` names inputs given at run time, which nodes may read like node outputs.
    """
    names: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.name in names:
            return i, "name", f"the name is used twice (also node {names[node.name] + 1})"
        if node.name in external:
            return i, "name", f"the name is also a pipeline input ({node.name!r})"
        names[node.name] = i
    for i, node in enumerate(nodes):
        for ref in node.upstream:
            if ref == node.name:
                return i, _ref_key(node, ref), "depends on itself"
            if ref not in names and ref not in external:
                known = sorted([*names, *external])
                return i, _ref_key(node, ref), f"unknown node {ref!r}; nodes and inputs: {known}"
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for ref in nodes[names[name]].upstream:
            if ref not in names:
                continue  # an external input
            if state.get(ref) == 1:
                return [*path, name, ref]
            if ref not in state and (cycle := visit(ref, [*path, name])) is not None:
                return cycle
        state[name] = 2
        return None

    for node in nodes:
        if node.name not in state and (cycle := visit(node.name, [])) is not None:
            start = cycle.index(cycle[-1])
            loop = cycle[start:]
            return names[loop[0]], "dependencies", "is in a dependency cycle: " + " -> ".join(loop)
    return None


def _ref_key(node: _Node, ref: str) -> str:
    for key in ("input_source", "entity_ids_source"):
        if getattr(node, key, None) == ref:
            return key
    return "inputs" if ref in node.inputs else "dependencies"


def load_pipeline(path: str | os.PathLike[str]) -> PipelineSpec:
    """Read a pipeline YAML file (``name``, ``description``, ``nodes``).

    Raises:
        SpecError: Naming the file, line and key of the first problem (a bad node, an
            unknown reference, a cycle).

    Example:
        >>> load_pipeline("sample_data/repo/pipeline.yaml").name  # doctest: +SKIP
        'daily_features'
    """
    doc = load_yaml(path)
    data = doc.data
    if not isinstance(data, Mapping):
        raise doc.error("must be a mapping with 'name' and 'nodes'")
    unknown = sorted(set(data) - {"name", "description", "inputs", "nodes"})
    if unknown:
        raise doc.error("unknown key (valid: name, description, inputs, nodes)", (unknown[0],))
    inputs = data.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise doc.error("must be a list of input names", ("inputs",))
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise doc.error("must be a non-empty list of nodes", ("nodes",))
    nodes = [_parse_node(doc, item, i) for i, item in enumerate(raw_nodes)]
    problem = graph_problem(nodes, external=inputs)
    if problem is not None:
        index, key, text = problem
        raise doc.error(text, ("nodes", index, key))
    name = data.get("name", re.sub(r"[^A-Za-z0-9._-]", "_", Path(doc.file).stem)[:64] or "pipeline")
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise doc.error(f"must be text, got {value!r}", (key,))
    if not PIPELINE_NAME.fullmatch(name):
        raise doc.error(
            "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", ("name",)
        )
    return PipelineSpec(
        name=name, description=description, inputs=inputs, nodes=nodes, base_dir=str(doc.folder.resolve())
    )


def _parse_node(doc: YamlDocument, item: Any, index: int) -> AnyNode:
    at = ("nodes", index)
    if not isinstance(item, Mapping):
        raise doc.error("a node must be a mapping with 'name' and 'type'", at)
    kind = item.get("type")
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        where = (*at, "type") if "type" in item else at
        raise doc.error(f"'type' must be one of {', '.join(_BY_TYPE)} (got {kind!r})", where)
    return parse(doc, model, at=at, data=item)


# -- node functions (the Tauro names) -----------------------------------------------------
def write_features_node(
    name: str,
    *,
    feature_group: str,
    input_source: str,
    feature_store: Literal["materialized", "online"] = "materialized",
    mode: Literal["append", "overwrite", "merge"] = "append",
    **options: Any,
) -> WriteFeaturesNode:
    """Return a node writing the output of ``input_source`` to ``feature_group``.

    Example:
        >>> write_features_node("materialize", feature_group="user_features", input_source="users").type
        'write_features'
    """
    return WriteFeaturesNode(
        name=name,
        feature_group=feature_group,
        input_source=input_source,
        feature_store=feature_store,
        mode=mode,
        **options,
    )


def read_features_node(
    name: str,
    *,
    feature_names: Sequence[str] | None = None,
    view: str | None = None,
    entity_ids_source: str | None = None,
    feature_store: Literal["materialized", "virtualized", "hybrid"] | None = None,
    **options: Any,
) -> ReadFeaturesNode:
    """Return a node reading features (for the entities output by ``entity_ids_source``).

    Example:
        >>> read_features_node("fetch", feature_names=["user_features.age"]).type
        'read_features'
    """
    return ReadFeaturesNode(
        name=name,
        feature_names=None if feature_names is None else list(feature_names),
        view=view,
        entity_ids_source=entity_ids_source,
        feature_store=feature_store,
        **options,
    )


def refresh_features_node(
    name: str, *, feature_group: str, to: Literal["materialized", "online"] = "materialized", **options: Any
) -> RefreshFeaturesNode:
    """Return a node promoting ``feature_group`` to ``materialized`` or ``online``.

    Example:
        >>> refresh_features_node("publish", feature_group="user_features", to="online").to
        'online'
    """
    return RefreshFeaturesNode(name=name, feature_group=feature_group, to=to, **options)


def sql_node(name: str, sql: str, **options: Any) -> SqlNode:
    """Return a SQL step.

    Example:
        >>> sql_node("users", "SELECT user_id FROM silver.users").type
        'sql'
    """
    return SqlNode(name=name, sql=sql, **options)


def python_node(
    name: str, function: str | Callable[..., Any], *, inputs: Sequence[str] = (), **options: Any
) -> PythonNode:
    """Return a Python step calling ``function(*outputs_of_inputs, **params)``.

    Example:
        >>> python_node("double", lambda df: df, inputs=["users"]).inputs
        ['users']
    """
    return PythonNode(name=name, function=function, inputs=list(inputs), **options)
