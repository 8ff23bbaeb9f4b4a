"""Monitoring: feature profiles, drift statistics and reports, and the event bus."""

from __future__ import annotations

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
from tauro_workbench.monitoring.monitor import WriteMonitor

__all__ = [
    "DriftDetected",
    "Event",
    "EventBus",
    "FeaturesWritten",
    "GroupRegistered",
    "Promoted",
    "RouteChanged",
    "Subscription",
    "SyncFailed",
    "WriteMonitor",
]
