"""The transport interface: turn one batch into one provider call, and its answer into outcomes.

A transport does not retry, sleep, batch or touch the ledger: the dispatcher owns that loop.
It raises the :mod:`newsletter.errors` transport errors (``RateLimited``, ``ProviderUnavailable``,
``ProviderRejected``, ``DeliveryUnknown``) for a batch-level failure, or returns a
:class:`BatchResult` with one :class:`Outcome` per recipient.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from newsletter.rendered import RenderedIssue


@dataclass(slots=True)
class Recipient:
    """One addressee of a batch, with everything personal already computed.

    Treat it as read-only. It is not ``frozen`` only because a send makes one per recipient and
    a frozen dataclass costs three times as much to build.
    """

    email: str
    name: str  # display name for the To header ("" for none)
    substitutions: Mapping[str, str]  # token -> value (see newsletter.personalize)
    headers: Mapping[str, str]  # per-recipient headers: List-Unsubscribe, List-Unsubscribe-Post
    custom_args: Mapping[str, str] = field(default_factory=dict)  # campaign id, recipient id


@dataclass(frozen=True)
class Sender:
    email: str
    name: str = ""
    reply_to: str = ""


@dataclass(frozen=True)
class Batch:
    campaign_id: str
    batch_no: int
    issue: RenderedIssue
    sender: Sender
    recipients: Sequence[Recipient]  # at most 1000, no address twice
    categories: tuple[str, ...] = ()
    asm_group_id: int = 0
    send_at: int = 0  # epoch seconds; 0 = now
    batch_id: str = ""  # SendGrid scheduled-send batch id
    sandbox: bool = False
    subject_prefix: str = ""  # "[TEST] " for test sends


class Status(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Outcome:  # read-only by convention; not frozen for the same reason as Recipient
    email: str
    status: Status
    reason: str = ""  # the provider's words when rejected
    message_id: str = ""


@dataclass(frozen=True)
class BatchResult:
    outcomes: Sequence[Outcome]
    provider_message_id: str = ""


class Transport(Protocol):
    name: str

    def send(self, batch: Batch) -> BatchResult:
        """Send one batch; raise a TransportError subclass for batch-level failures."""
        ...

    def close(self) -> None: ...
