"""MaterializationScheduler: background materializations of the hybrid router, with a cool-down.

With ``auto_materialize_on_read``, a virtual group read while above ``hybrid_threshold_rows``
(never materialized, or stale) is materialized off the read path: one daemon thread per group,
at most one running job per group, and at most one start per
``hybrid.materialize_cooldown_seconds`` per group. A failed job is logged and counted, never
raised (the read that made it due was answered already).

Example:
    >>> scheduler = MaterializationScheduler(hybrid.materialize, metrics, lambda: 60.0)  # doctest: +SKIP
    >>> scheduler.schedule("user_features")  # doctest: +SKIP
    >>> scheduler.wait(timeout=60)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from tauro_workbench.stores.route_metrics import RouteMetrics

__all__ = ["MaterializationScheduler"]


class MaterializationScheduler:
    """Runs ``materialize(group)`` in background threads, one per group, with a cool-down.

    Args:
        materialize: Materializes one group (the promotion path); its result is logged.
        metrics: Counts ``started``, ``skipped``, ``succeeded`` and ``failed`` jobs.
        cooldown: Returns the cool-down in seconds (read at each scheduling, so a config
            change applies at once).
    """

    def __init__(
        self, materialize: Callable[[str], Any], metrics: RouteMetrics, cooldown: Callable[[], float]
    ) -> None:
        self._materialize = materialize
        self._metrics = metrics
        self._cooldown = cooldown
        self._lock = threading.Lock()
        self._jobs: dict[str, threading.Thread] = {}
        self._last: dict[str, float] = {}

    def schedule(self, group: str) -> threading.Thread | None:
        """Start materializing ``group`` unless a job runs or the cool-down has not passed.

        Returns:
            The started thread, or None when nothing was started.
        """
        cooldown = self._cooldown()
        with self._lock:
            running = self._jobs.get(group)
            if running is not None and running.is_alive():
                return None
            last = self._last.get(group)
            now = time.monotonic()
            if last is not None and now - last < cooldown:
                self._metrics.record_materialization("skipped")
                return None
            self._last[group] = now
            thread = threading.Thread(
                target=self._run, args=(group,), name=f"tauro-materialize-{group}", daemon=True
            )
            self._jobs[group] = thread
            self._metrics.record_materialization("started")
            thread.start()
        logger.info("auto-materializing {} in the background (it crossed hybrid_threshold_rows)", group)
        return thread

    def _run(self, group: str) -> None:
        try:
            result = self._materialize(group)
        except Exception as err:  # a background job reports, never raises
            self._metrics.record_materialization("failed")
            logger.opt(exception=err).warning("auto-materialization of {} failed: {}", group, err)
            return
        self._metrics.record_materialization("succeeded")
        logger.info("auto-materialized {}: {}", group, getattr(result, "message", result))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the jobs started so far; True when all finished within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return not any(job.is_alive() for job in jobs)
