"""Retries with exponential backoff for transient failures (locked databases, dropped sockets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from loguru import logger

__all__ = ["RetryPolicy"]

T = TypeVar("T")


class RetryPolicy:
    """Run a call again after transient failures, waiting longer each time.

    Waits ``backoff_ms``, then ``backoff_ms * multiplier``, ... between ``max_retries + 1``
    attempts. Only exceptions for which ``is_transient`` returns True are retried; the last one
    is re-raised.
    """

    def __init__(
        self,
        *,
        max_retries: int = 3,
        backoff_ms: float = 100.0,
        multiplier: float = 2.0,
        is_transient: Callable[[BaseException], bool] = lambda err: False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_ms = backoff_ms
        self.multiplier = multiplier
        self.is_transient = is_transient
        self._sleep = sleep

    def delays(self) -> list[float]:
        """Return the waits in seconds between attempts."""
        return [self.backoff_ms * self.multiplier**i / 1000.0 for i in range(self.max_retries)]

    def call(self, fn: Callable[[], T], *, what: str = "operation") -> T:
        """Return ``fn()``, retrying transient failures per the policy."""
        delays = self.delays()
        for attempt in range(len(delays) + 1):
            try:
                return fn()
            except Exception as err:
                if attempt >= len(delays) or not self.is_transient(err):
                    raise
                logger.warning(
                    "{} failed ({}); retry {}/{} in {:.0f} ms",
                    what, err, attempt + 1, len(delays), delays[attempt] * 1000,
                )
                self._sleep(delays[attempt])
        raise AssertionError("unreachable")  # pragma: no cover
