"""A circuit breaker per deployment: stop calling an upstream that keeps failing, probe it now and then."""

from __future__ import annotations

import time


class Breaker:
    """closed -> (N consecutive outages) -> open -> (cooldown) -> half-open: one request probes.

    The probe's success closes it, its failure opens it again. `hold` honours an upstream's Retry-After
    without counting as a failure toward opening.
    """

    def __init__(self, failures: int = 5, cooldown: float = 10.0) -> None:
        self.threshold, self.cooldown = max(1, failures), cooldown
        self.failures = 0
        self.state = "closed"  # closed | open | half-open
        self.open_until = 0.0
        self.hold_until = 0.0
        self.probing = False

    def available(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now < self.hold_until:
            return False
        if self.state == "closed":
            return True
        if self.state == "open":
            return now >= self.open_until
        return not self.probing

    def begin(self, now: float | None = None) -> None:
        """The caller was picked to call this deployment; an open breaker past its cooldown starts probing."""
        now = time.monotonic() if now is None else now
        if self.state == "open" and now >= self.open_until:
            self.state = "half-open"
        if self.state == "half-open":
            self.probing = True

    def success(self) -> None:
        self.failures, self.state, self.probing = 0, "closed", False

    def failure(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.threshold:
            self.state, self.open_until = "open", now + self.cooldown
        self.probing = False

    def release(self) -> None:
        """The call ended without a verdict (client gone, request-side error): let another probe go."""
        self.probing = False

    def hold(self, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.hold_until = max(self.hold_until, now + seconds)
