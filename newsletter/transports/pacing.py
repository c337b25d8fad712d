"""Pacing and retry timing for calls to a provider: rate limits, backoff with jitter, a global hold.

The dispatcher paces its batches with it, and the SendGrid suppression sync its page requests.

Everything takes the clock, the sleep and the random source as arguments so tests run in no
time and see exactly which waits were asked for.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

Clock = Callable[[], float]
Sleep = Callable[[float], None]


MAX_WAIT_SECONDS = 900.0  # the longest single wait a provider can make us take (15 min)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: ``base * 2**attempt`` capped, times U(0.5, 1).

    A wait the provider asks for (``retry_after``) is honoured up to ``max_wait`` seconds: a
    ``X-RateLimit-Reset`` misread by anyone (milliseconds, a clock far off) cannot stall a send
    for more than that before the next try.
    """

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    max_wait: float = MAX_WAIT_SECONDS

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        wait = min(self.cap, self.base * (2**attempt))
        jittered = wait * (0.5 + self.rng.random() / 2)
        if retry_after is not None:
            # the provider said when; add a little jitter so parallel senders do not stampede
            asked = max(retry_after, 0.0) + self.rng.random() * min(1.0, self.base)
            return min(asked, self.max_wait)
        return min(jittered, self.max_wait)


@dataclass(frozen=True)
class Wait:
    """A wait a send (or the suppression sync) is in: what for and until when."""

    reason: str  # "the sendgrid rate limit (HTTP 429)", "a retry of batch 3 after: ..."
    until: datetime  # aware, UTC
    seconds: float
    asked: float | None = None  # what the provider asked for, when more than we wait

    def describe(self) -> str:
        until = self.until.strftime("%H:%M:%S UTC")
        line = f"waiting for {self.reason} until {until} ({duration(self.seconds)})"
        if self.asked is not None and self.asked > self.seconds + 1:
            line += (
                f"; the provider asked for {duration(self.asked)}, more than the cap "
                "(send.max_wait_seconds): trying again then"
            )
        return line


def duration(seconds: float) -> str:
    """``42 s``, ``15 min``, ``3.5 h``, ``55,000 years``: a wait as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:,.0f} days"
    return f"{seconds / (365.25 * 86400):,.0f} years"


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

    def already_sent(self, sends: Iterable[tuple[float, int]]) -> None:
        """Count sends made before this pacer, as ``(seconds ago, recipients)``, in its hour.

        Call before the first :meth:`acquire`. A campaign resumed (or the next one started)
        in a new process then keeps to ``per_hour`` across both processes.
        """
        now = self.clock()
        for ago, n in sorted(sends, key=lambda s: -s[0]):  # oldest first, as acquire appends
            if 0 <= ago < 3600 and n > 0:
                self._hour.append((now - ago, n))
                self._hour_total += n

    def hold_until(self, when: float) -> None:
        self._hold = max(self._hold, when)

    def wait_time(self, n: int) -> float:
        """How long before ``n`` recipients may be sent (0 = now).

        A batch larger than ``per_hour`` cannot fit any hour beside other sends: it waits until
        nothing was sent in the last hour (``send`` caps the batch size so this only happens
        when resuming a campaign prepared under a looser limit).
        """
        now = self.clock()
        wait = max(0.0, self._hold - now, self._next_at - now)
        if self.per_hour:
            while self._hour and self._hour[0][0] <= now - 3600:
                self._hour_total -= self._hour.popleft()[1]
            if self._hour and self._hour_total + n > self.per_hour:
                if n >= self.per_hour:
                    wait = max(wait, self._hour[-1][0] + 3600 - now)
                else:
                    # wait until enough of the last hour's sends have aged out
                    need = self._hour_total + n - self.per_hour
                    freed = 0
                    for at, k in self._hour:
                        freed += k
                        if freed >= need:
                            wait = max(wait, at + 3600 - now)
                            break
        return wait

    def wait_for(self, n: int, stop: threading.Event | None = None, step: float = 0.25) -> bool:
        """Sleep until ``n`` may go, in steps of ``step`` seconds when ``stop`` is given.

        Returns False (without waiting further) as soon as ``stop`` is set, so a Ctrl-C during
        an hour-long pacing wait is noticed within ``step`` seconds.
        """
        while True:
            wait = self.wait_time(n)
            if wait <= 0:
                return True
            if stop is not None:
                if stop.is_set():
                    return False
                wait = min(wait, step)
            self.sleep(wait)

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


def max_batch(per_second: float, per_hour: int, batch_size: int) -> int:
    """The largest batch that keeps one request within both limits (0 = no limit)."""
    size = batch_size
    if per_hour:
        size = min(size, per_hour)
    if per_second:
        size = min(size, max(1, int(per_second)))
    return max(1, size)
