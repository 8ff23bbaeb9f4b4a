"""RetryPolicy: exponential backoff, which errors are retried, giving up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.exceptions import ConfigurationError
from tauro_workbench.retry import RetryPolicy


class Transient(Exception):
    pass


class Flaky:
    """Fails with ``Transient`` the first ``failures`` calls, then returns the call count."""

    def __init__(self, failures: int, error: type[Exception] = Transient) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.calls


def is_transient(err: BaseException) -> bool:
    return isinstance(err, Transient)


def test_delays_grow_exponentially() -> None:
    assert RetryPolicy(max_retries=4, backoff_ms=50, multiplier=3).delays() == pytest.approx(
        [0.05, 0.15, 0.45, 1.35]
    )
    assert RetryPolicy(max_retries=0).delays() == []
    assert RetryPolicy(max_retries=3, backoff_ms=10, multiplier=1).delays() == pytest.approx([0.01] * 3)


def test_transient_failures_are_retried_with_the_backoff_waits() -> None:
    slept: list[float] = []
    policy = RetryPolicy(
        max_retries=3, backoff_ms=100, multiplier=2, is_transient=is_transient, sleep=slept.append
    )
    assert policy.call(Flaky(2)) == 3
    assert slept == pytest.approx([0.1, 0.2])


def test_gives_up_after_max_retries_with_the_last_error() -> None:
    slept: list[float] = []
    policy = RetryPolicy(
        max_retries=2, backoff_ms=10, multiplier=2, is_transient=is_transient, sleep=slept.append
    )
    flaky = Flaky(10)
    with pytest.raises(Transient, match="failure 3"):
        policy.call(flaky)
    assert flaky.calls == 3
    assert slept == pytest.approx([0.01, 0.02])


def test_other_errors_are_raised_at_once() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_retries=5, is_transient=is_transient, sleep=slept.append)
    flaky = Flaky(1, error=KeyError)
    with pytest.raises(KeyError):
        policy.call(flaky)
    assert flaky.calls == 1
    assert slept == []


def test_nothing_is_retried_without_a_predicate() -> None:
    flaky = Flaky(1)
    with pytest.raises(Transient):
        RetryPolicy(max_retries=5, sleep=lambda s: None).call(flaky)
    assert flaky.calls == 1


def test_a_per_call_predicate_overrides_the_default() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_retries=1, backoff_ms=1, sleep=slept.append)
    assert policy.call(Flaky(1), is_transient=is_transient) == 2
    assert slept == pytest.approx([0.001])


def test_from_config_uses_the_retry_options() -> None:
    config = FeatureStoreConfig(max_retries=3, retry_backoff_ms=20, retry_backoff_multiplier=1.5)
    policy = RetryPolicy.from_config(config)
    assert (policy.max_retries, policy.backoff_ms, policy.multiplier) == (3, 20, 1.5)
    assert policy.delays() == pytest.approx([0.02, 0.03, 0.045])
    assert repr(policy) == "RetryPolicy(max_retries=3, backoff_ms=20.0, multiplier=1.5)"


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"backoff_ms": -5}, {"multiplier": 0.5}],
    ids=["retries", "backoff", "mult"],
)
def test_out_of_range_numbers_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="Invalid retry policy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    retries=st.integers(0, 6),
    failures=st.integers(0, 10),
    backoff=st.floats(0, 1000, allow_nan=False),
    multiplier=st.floats(1, 4, allow_nan=False),
)
def test_attempts_and_waits_match_the_policy(
    retries: int, failures: int, backoff: float, multiplier: float
) -> None:
    """Oracle: success iff failures <= retries; one wait per failure, the i-th = backoff * m**i."""
    slept: list[float] = []
    policy = RetryPolicy(
        max_retries=retries,
        backoff_ms=backoff,
        multiplier=multiplier,
        is_transient=is_transient,
        sleep=slept.append,
    )
    flaky = Flaky(failures)
    if failures <= retries:
        assert policy.call(flaky) == failures + 1
    else:
        with pytest.raises(Transient):
            policy.call(flaky)
    waits = min(failures, retries)
    assert flaky.calls == min(failures, retries) + 1
    assert slept == pytest.approx([backoff * multiplier**i / 1000 for i in range(waits)])
