"""RouteMetrics: thread-safe counters of the hybrid router (reads, errors, seconds, changes)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["RouteMetrics"]


class RouteMetrics:
    """Thread-safe counters of the hybrid router: reads, errors and seconds per route and group.

    Example:
        >>> m = RouteMetrics()
        >>> m.record_read("g", "virtual", 0.5)
        >>> m.snapshot()["reads"]
        {'virtual': 1}
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[tuple[str, str], int] = {}
        self._seconds: dict[tuple[str, str], float] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._route_changes = 0
        self._materializations: dict[str, int] = {}

    def record_read(self, group: str, target: str, seconds: float, *, ok: bool = True) -> None:
        """Count one read of ``group`` on ``target`` that took ``seconds`` (``ok=False``: it failed)."""
        key = (group, target)
        with self._lock:
            if ok:
                self._reads[key] = self._reads.get(key, 0) + 1
                self._seconds[key] = self._seconds.get(key, 0.0) + seconds
            else:
                self._errors[key] = self._errors.get(key, 0) + 1

    def record_route_change(self) -> None:
        """Count one route change."""
        with self._lock:
            self._route_changes += 1

    def record_materialization(self, outcome: str) -> None:
        """Count an automatic materialization ``started``, ``succeeded``, ``failed`` or ``skipped``."""
        with self._lock:
            self._materializations[outcome] = self._materializations.get(outcome, 0) + 1

    def latencies(self, group: str) -> dict[str, float]:
        """Return the mean read seconds of ``group`` per route measured so far."""
        with self._lock:
            return {t: self._seconds[(g, t)] / n for (g, t), n in self._reads.items() if g == group and n}

    def snapshot(self) -> dict[str, Any]:
        """Return a consistent copy of every counter.

        Keys: ``reads``, ``errors`` and ``seconds`` (per route), ``groups`` (per group and route:
        ``reads``, ``errors``, ``mean_seconds``), ``route_changes`` and ``materializations``.
        """
        with self._lock:
            reads: dict[str, int] = {}
            errors: dict[str, int] = {}
            seconds: dict[str, float] = {}
            groups: dict[str, dict[str, dict[str, float]]] = {}
            for (g, t), n in self._reads.items():
                reads[t] = reads.get(t, 0) + n
                seconds[t] = seconds.get(t, 0.0) + self._seconds[(g, t)]
                entry = groups.setdefault(g, {}).setdefault(t, {"reads": 0, "errors": 0, "mean_seconds": 0.0})
                entry["reads"] = n
                entry["mean_seconds"] = self._seconds[(g, t)] / n
            for (g, t), n in self._errors.items():
                errors[t] = errors.get(t, 0) + n
                entry = groups.setdefault(g, {}).setdefault(t, {"reads": 0, "errors": 0, "mean_seconds": 0.0})
                entry["errors"] = n
            return {
                "reads": reads,
                "errors": errors,
                "seconds": seconds,
                "groups": groups,
                "route_changes": self._route_changes,
                "materializations": dict(self._materializations),
            }

    def __repr__(self) -> str:
        snap = self.snapshot()
        return f"RouteMetrics(reads={snap['reads']}, errors={snap['errors']}, route_changes={snap['route_changes']})"
