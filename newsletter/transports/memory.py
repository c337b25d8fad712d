"""The memory transport: keeps every message it is given, with scripted failures.

Used by ``newsletter send --dry-run`` (nothing leaves the machine, the summary is real) and by
tests. A script is a list of steps consumed one per :meth:`MemoryTransport.send` call; each step
is ``"ok"``, ``"429"``, ``"500"``, ``"400"``, ``"unknown"``, or a ``TransportError`` to raise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from newsletter.errors import (
    DeliveryUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TransportError,
)
from newsletter.transports.base import Batch, BatchResult, Outcome, Status

Step = str | TransportError


@dataclass(frozen=True)
class SentMessage:
    campaign_id: str
    batch_no: int
    email: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    custom_args: dict[str, str]


class MemoryTransport:
    name = "memory"

    def __init__(self, script: Iterable[Step] = (), *, keep_bodies: bool = True) -> None:
        self._script = list(script)
        self._lock = threading.Lock()
        self.keep_bodies = keep_bodies
        self.messages: list[SentMessage] = []
        self.calls = 0

    def _next_step(self) -> Step:
        with self._lock:
            self.calls += 1
            return self._script.pop(0) if self._script else "ok"

    def send(self, batch: Batch) -> BatchResult:
        step = self._next_step()
        if isinstance(step, TransportError):
            raise step
        if step == "429":
            raise RateLimited("rate limited (scripted)", retry_after=1.0)
        if step == "500":
            raise ProviderUnavailable("server error (scripted)", status=500)
        if step == "400":
            raise ProviderRejected("bad request (scripted)", status=400, body="scripted")
        if step == "unknown":
            raise DeliveryUnknown("connection dropped after sending (scripted)")
        issue = batch.issue
        out: list[Outcome] = []
        kept: list[SentMessage] = []
        for r in batch.recipients:
            subject = batch.subject_prefix + issue.subject_template.fill(r.substitutions)
            html = issue.html_template.fill(r.substitutions) if self.keep_bodies else ""
            text = issue.text_template.fill(r.substitutions) if self.keep_bodies else ""
            kept.append(
                SentMessage(
                    batch.campaign_id,
                    batch.batch_no,
                    r.email,
                    subject,
                    html,
                    text,
                    dict(r.headers),
                    dict(r.custom_args),
                )
            )
            out.append(Outcome(r.email, Status.ACCEPTED, message_id=f"mem-{batch.batch_no}"))
        with self._lock:
            self.messages.extend(kept)
        return BatchResult(out, provider_message_id=f"mem-{batch.batch_no}")

    def close(self) -> None:
        return None
