"""A circuit breaker per replica: closed -> open after N failures in a row -> half-open after a
cool-down (one trial request) -> closed on success, open again on failure.

Hand-written on purpose: the Python breakers (pybreaker, aiobreaker) wrap a call and decide by
exception, while ours is also fed by the health probe (a probe success closes it) and is read
by the router without making a call; the state machine is twenty lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        reset_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_after_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def available(self) -> bool:
        """May a request go to this replica now? (Closed, or half-open with no trial out.)"""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._trial_out
        )

    def acquire(self) -> None:
        """A request is being sent; in half-open, it is the one trial."""
        if self.state is BreakerState.HALF_OPEN:
            self._trial_out = True

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_out = False

    def failure(self) -> None:
        self._failures += 1
        self._trial_out = False
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()  # (re)open: a failed trial restarts the cool-down
