"""Monitoring: feature profiles, drift statistics and reports, and the event bus.

Charts of these live in :mod:`tauro_workbench.notebook.charts` (the ``notebook`` extra).
"""

from __future__ import annotations

from tauro_workbench.monitoring.drift import DriftReport, FeatureDrift, compare_profiles, ks_statistic, psi
from tauro_workbench.monitoring.events import (
    DriftDetected,
    Event,
    EventBus,
    FeaturesWritten,
    GroupRegistered,
    Promoted,
    RouteChanged,
    Subscription,
    SyncFailed,
)
from tauro_workbench.monitoring.monitor import Reference, WriteMonitor, drift_history, list_reports
from tauro_workbench.monitoring.profile import FeatureProfile, GroupProfile, merge_profiles, profile_frame

__all__ = [
    "DriftDetected",
    "DriftReport",
    "Event",
    "EventBus",
    "FeatureDrift",
    "FeatureProfile",
    "FeaturesWritten",
    "GroupProfile",
    "GroupRegistered",
    "Promoted",
    "Reference",
    "RouteChanged",
    "Subscription",
    "SyncFailed",
    "WriteMonitor",
    "compare_profiles",
    "drift_history",
    "ks_statistic",
    "list_reports",
    "merge_profiles",
    "profile_frame",
    "psi",
]
