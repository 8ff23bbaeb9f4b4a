"""Retries with exponential backoff for transient failures (locked databases, dropped sockets).

Example:
    >>> policy = RetryPolicy(max_retries=3, backoff_ms=100, multiplier=2)
    >>> policy.delays()
    [0.1, 0.2, 0.4]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from loguru import logger

from tauro_workbench.exceptions import ConfigurationError

if TYPE_CHECKING:
    from tauro_workbench.config import FeatureStoreConfig

__all__ = ["RetryPolicy"]

T = TypeVar("T")


def _never(err: BaseException) -> bool:
    return False


class RetryPolicy:
    """Run a call again after transient failures, waiting longer each time.

    Makes at most ``max_retries + 1`` attempts and waits ``backoff_ms``, then
    ``backoff_ms * multiplier``, then ``backoff_ms * multiplier**2``, ... between them. Only
    exceptions for which the transient predicate returns True are retried; any other exception,
    and the last transient one, propagate unchanged.

    Args:
        max_retries: Retries after the first attempt (0 = try once).
        backoff_ms: Wait before the first retry, in milliseconds.
        multiplier: Growth factor of the wait (>= 1).
        is_transient: Default predicate deciding which exceptions are worth retrying (none by
            default); ``call(..., is_transient=...)`` overrides it per call.
        sleep: The waiting function (``time.sleep``); tests pass a recorder.

    Raises:
        ConfigurationError: If a number is out of range.
    """

    def __init__(
        self,
        *,
        max_retries: int = 3,
        backoff_ms: float = 100.0,
        multiplier: float = 2.0,
        is_transient: Callable[[BaseException], bool] = _never,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0 or backoff_ms < 0 or multiplier < 1:
            raise ConfigurationError(
                f"Invalid retry policy: max_retries={max_retries}, backoff_ms={backoff_ms}, "
                f"multiplier={multiplier}.",
                hint="Use max_retries >= 0, backoff_ms >= 0 and multiplier >= 1.",
            )
        self.max_retries = max_retries
        self.backoff_ms = backoff_ms
        self.multiplier = multiplier
        self.is_transient = is_transient
        self.sleep = sleep

    @classmethod
    def from_config(
        cls,
        config: FeatureStoreConfig,
        *,
        is_transient: Callable[[BaseException], bool] = _never,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RetryPolicy:
        """Build the policy of ``max_retries`` / ``retry_backoff_ms`` / ``retry_backoff_multiplier``.

        Example:
            >>> from tauro_workbench.config import FeatureStoreConfig
            >>> RetryPolicy.from_config(FeatureStoreConfig(max_retries=2)).delays()
            [0.1, 0.2]
        """
        return cls(
            max_retries=config.max_retries,
            backoff_ms=config.retry_backoff_ms,
            multiplier=config.retry_backoff_multiplier,
            is_transient=is_transient,
            sleep=sleep,
        )

    def delays(self) -> list[float]:
        """Return the waits in seconds between attempts (``max_retries`` of them)."""
        return [self.backoff_ms * self.multiplier**i / 1000.0 for i in range(self.max_retries)]

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str = "operation",
        is_transient: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """Return ``fn()``, retrying transient failures per the policy.

        Args:
            fn: The operation; it must be safe to run again after a transient failure.
            what: Names the operation in the retry warnings.
            is_transient: Overrides the policy's predicate for this call.

        Returns:
            What ``fn`` returned on the first successful attempt.

        Raises:
            Exception: Whatever ``fn`` raised last (a non-transient error at once, a transient
                one after ``max_retries`` retries).

        Example:
            >>> RetryPolicy(max_retries=1).call(lambda: 42)
            42
        """
        transient = is_transient or self.is_transient
        delays = self.delays()
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as err:
                if attempt >= len(delays) or not transient(err):
                    raise
                delay = delays[attempt]
                attempt += 1
                logger.warning(
                    "{} failed ({}); retry {}/{} in {:.0f} ms", what, err, attempt, len(delays), delay * 1000
                )
                self.sleep(delay)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_retries={self.max_retries}, backoff_ms={self.backoff_ms}, "
            f"multiplier={self.multiplier})"
        )
