"""Pacing and retry timing for the dispatcher: rate limits, backoff with jitter, a global hold.

Everything takes the clock, the sleep and the random source as arguments so tests run in no
time and see exactly which waits were asked for.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class Backoff:
    """Exponential backoff with full jitter: ``base * 2**attempt`` capped, times U(0.5, 1)."""

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        wait = min(self.cap, self.base * (2**attempt))
        jittered = wait * (0.5 + self.rng.random() / 2)
        if retry_after is not None:
            # the provider said when; add a little jitter so parallel senders do not stampede
            return max(retry_after, 0.0) + self.rng.random() * min(1.0, self.base)
        return jittered


class Pacer:
    """Recipients per second and per hour; :meth:`acquire` waits until ``n`` more may go.

    ``hold_until`` stops everyone until a time (after a 429, the whole account is limited).
    """

    def __init__(
        self,
        *,
        per_second: float = 0.0,
        per_hour: int = 0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.per_second = per_second
        self.per_hour = per_hour
        self.clock = clock
        self.sleep = sleep
        self._next_at = 0.0
        self._hour: deque[tuple[float, int]] = deque()
        self._hour_total = 0
        self._hold = 0.0

    def hold_until(self, when: float) -> None:
        self._hold = max(self._hold, when)

    def wait_time(self, n: int) -> float:
        """How long before ``n`` recipients may be sent (0 = now)."""
        now = self.clock()
        wait = max(0.0, self._hold - now, self._next_at - now)
        if self.per_hour:
            while self._hour and self._hour[0][0] <= now - 3600:
                self._hour_total -= self._hour.popleft()[1]
            if self._hour_total + n > self.per_hour and self._hour:
                # wait until enough of the last hour's sends have aged out
                need = self._hour_total + n - self.per_hour
                freed = 0
                for at, k in self._hour:
                    freed += k
                    if freed >= need:
                        wait = max(wait, at + 3600 - now)
                        break
        return wait

    def acquire(self, n: int) -> float:
        """Block (with the injected sleep) until ``n`` recipients may go; return the wait."""
        total = 0.0
        while True:
            wait = self.wait_time(n)
            if wait <= 0:
                break
            self.sleep(wait)
            total += wait
        now = self.clock()
        if self.per_second:
            self._next_at = max(self._next_at, now) + n / self.per_second
        if self.per_hour:
            self._hour.append((now, n))
            self._hour_total += n
        return total
