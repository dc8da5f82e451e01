from __future__ import annotations

from gateway.backends.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_then_half_opens_for_one_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=5, clock=clock)
    for _ in range(2):
        breaker.failure()
    assert breaker.state is BreakerState.CLOSED and breaker.available()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.available()
    clock.now = 5.0
    assert breaker.state is BreakerState.HALF_OPEN and breaker.available()
    breaker.acquire()
    assert not breaker.available()  # one trial at a time
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.available()


def test_a_failed_trial_reopens_for_a_full_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5, clock=clock)
    breaker.failure()
    clock.now = 6.0
    breaker.acquire()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 10.0
    assert breaker.state is BreakerState.OPEN
    clock.now = 11.0
    assert breaker.state is BreakerState.HALF_OPEN


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state is BreakerState.CLOSED
