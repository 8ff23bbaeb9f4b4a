"""Headless pipelines: Tauro-style nodes, the FeatureStoreExecutorAdapter and a runner.

Example:
    >>> from tauro_workbench.pipeline import run_pipeline, sql_node, write_features_node
    >>> pipeline = {"nodes": [
    ...     sql_node("users", "SELECT user_id, plan FROM silver.users"),
    ...     write_features_node("materialize", feature_group="user_plan", input_source="users"),
    ... ]}
    >>> run_pipeline(wb, pipeline).nodes[-1].status   # doctest: +SKIP
    'ok'
"""

from __future__ import annotations

from tauro_workbench.pipeline.adapter import FeatureStoreExecutorAdapter, NodeOutcome, frame_digest
from tauro_workbench.pipeline.nodes import (
    Node,
    PipelineSpec,
    PythonNode,
    ReadFeaturesNode,
    RefreshFeaturesNode,
    SqlNode,
    WriteFeaturesNode,
    load_pipeline,
    python_node,
    read_features_node,
    refresh_features_node,
    sql_node,
    write_features_node,
)
from tauro_workbench.pipeline.runner import NodeRun, PipelineRun, run_pipeline

__all__ = [
    "FeatureStoreExecutorAdapter",
    "Node",
    "NodeOutcome",
    "NodeRun",
    "PipelineRun",
    "PipelineSpec",
    "PythonNode",
    "ReadFeaturesNode",
    "RefreshFeaturesNode",
    "SqlNode",
    "WriteFeaturesNode",
    "frame_digest",
    "load_pipeline",
    "python_node",
    "read_features_node",
    "refresh_features_node",
    "run_pipeline",
    "sql_node",
    "write_features_node",
]
