"""Shared helpers of the benchmarks: timing, peak memory in a child process, result rows."""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    """One benchmark row: our time against the fastest baseline of the same run."""

    benchmark: str
    case: str
    ours_s: float
    baselines_s: dict[str, float]
    target_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_baseline(self) -> tuple[str, float] | None:
        if not self.baselines_s:
            return None
        name = min(self.baselines_s, key=self.baselines_s.__getitem__)
        return name, self.baselines_s[name]

    @property
    def ratio(self) -> float | None:
        best = self.best_baseline
        return None if best is None or best[1] == 0 else self.ours_s / best[1]

    @property
    def passed(self) -> bool | None:
        if self.target_ratio is None or self.ratio is None:
            return None
        return self.ratio <= self.target_ratio

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, passed=self.passed, best_baseline=self.best_baseline)
        return data


def time_best(fn: Callable[[], Any], *, repeat: int = 3, warmup: int = 1) -> float:
    """Return the best wall time of ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def percentiles(samples: list[float], *points: float) -> list[float]:
    """Return the given percentiles (0-100) of ``samples``."""
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=1000, method="inclusive")
    return [ordered[0] if p <= 0 else ordered[-1] if p >= 100 else cuts[int(p * 10) - 1] for p in points]


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    start = time.perf_counter()
    try:
        result = fn(*args)
        error = None
    except Exception as err:  # reported to the parent
        result, error = None, repr(err)
    elapsed = time.perf_counter() - start
    queue.put({"seconds": elapsed, "peak_mb": peak_rss_mb(), "result": result, "error": error})


def peak_rss_mb() -> float:
    """Peak RSS of this process: VmHWM (ru_maxrss survives exec, so it can report the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now (VmRSS), e.g. after imports, before a measured run."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float = 900) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh process; return its seconds, peak RSS (MB) and result.

    ``fn`` must be a module-level function (it is pickled by multiprocessing's spawn start
    method). Peak RSS includes the interpreter and imports (~100-200 MB).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    try:
        outcome = queue.get(timeout=timeout)
    finally:
        proc.join(timeout=30)
    if outcome["error"]:
        raise RuntimeError(f"benchmark child failed: {outcome['error']}")
    return dict(outcome)
