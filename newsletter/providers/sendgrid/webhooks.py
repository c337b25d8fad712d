"""SendGrid Event Webhook: signature check, parsing, and what each event means for us.

SendGrid posts JSON arrays of events, retries for up to 24 hours, and often delivers an event
twice. A signed webhook carries ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER ECDSA
P-256/SHA-256 signature) over ``timestamp + raw body`` with the timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``; the public key is shown by SendGrid as base64 DER.

Events that mean "never mail this address again" become suppressions; events that carry our
``custom_args`` (``campaign_id``, ``recipient_id``) are handed to an :class:`EventSink` (the
dispatch ledger). Every event is kept once, by ``sg_event_id``, so processing is idempotent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from newsletter.errors import ConfigError, NewsletterError
from newsletter.store.audience import AudienceStore, WebhookEventRow

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32  # arrays/objects inside each other; an event array is 3 deep
MAX_EVENTS = 100_000
TOO_DEEP = f"body nests arrays or objects more than {MAX_DEPTH} deep; SendGrid's events never do"

# `dropped` reasons that mean the address itself is on one of SendGrid's suppression lists
_DROPPED = {
    "bounced address": "bounced",
    "unsubscribed address": "unsubscribed",
    "spam reporting address": "spam_report",
    "invalid": "invalid",
}
LEDGER_EVENTS = frozenset(
    {"processed", "delivered", "open", "click", "deferred", "bounce", "dropped", "spamreport",
     "unsubscribe", "group_unsubscribe"}
)  # fmt: skip


class WebhookRejected(NewsletterError):
    """A webhook request we refuse: ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


class EventSink(Protocol):
    """Where per-recipient delivery events go (implemented by the dispatch ledger)."""

    def record_event(
        self, campaign_id: str, recipient_id: str, event: str, at: datetime, event_id: str
    ) -> bool: ...


class Verifier:
    """Checks SendGrid's signature with the configured public key (base64 DER, P-256)."""

    def __init__(self, public_key_b64: str, *, max_age_seconds: int) -> None:
        try:
            key = load_der_public_key(base64.b64decode(public_key_b64.strip(), validate=True))
        except (ValueError, binascii.Error) as err:
            raise ConfigError(
                "not a valid verification key; paste the base64 key SendGrid shows under "
                "Mail Settings > Event Webhook > Signature Verification",
                key="unsubscribe.webhook_public_key",
            ) from err
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ConfigError(
                "the verification key must be an ECDSA P-256 public key",
                key="unsubscribe.webhook_public_key",
            )
        self._key = key
        self.max_age = max_age_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: datetime) -> None:
        signature = headers.get(SIGNATURE_HEADER.lower(), "") or headers.get(SIGNATURE_HEADER, "")
        stamp = headers.get(TIMESTAMP_HEADER.lower(), "") or headers.get(TIMESTAMP_HEADER, "")
        if not signature or not stamp:
            raise WebhookRejected("unsigned request: signature and timestamp headers required")
        try:
            at = int(stamp)
        except ValueError as err:
            raise WebhookRejected("bad timestamp header") from err
        if abs(now.timestamp() - at) > self.max_age:
            raise WebhookRejected("timestamp too old (or in the future); refusing a replay")
        try:
            raw_sig = base64.b64decode(signature, validate=True)
            self._key.verify(raw_sig, stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, binascii.Error) as err:
            raise WebhookRejected("bad signature") from err


@dataclass(frozen=True)
class Event:
    event_id: str
    event: str
    email: str
    at: datetime
    campaign_id: str = ""
    recipient_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    raw: str = ""


def parse_events(body: bytes) -> list[Event]:
    """The events of one webhook request; :class:`WebhookRejected` (400) if it is not one.

    Whatever the body, the answer is a list or a 400: JSON nested deeper than
    :data:`MAX_DEPTH` (SendGrid's events are 3 deep), numbers too long to convert, or more
    than :data:`MAX_EVENTS` events are refused, never a RecursionError or a 500.
    """
    try:
        items = json.loads(body)
    except RecursionError as err:
        raise WebhookRejected(TOO_DEEP, status=400) from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WebhookRejected(f"body is not JSON ({err})", status=400) from err
    except ValueError as err:  # the only other one: an integer of more than 4300 digits
        raise WebhookRejected("body holds a number too long to read", status=400) from err
    if not isinstance(items, list):
        raise WebhookRejected("body must be a JSON array of events", status=400)
    if len(items) > MAX_EVENTS:
        raise WebhookRejected(f"more than {MAX_EVENTS} events in one request", status=400)
    if _depth(items) > MAX_DEPTH:
        raise WebhookRejected(TOO_DEEP, status=400)
    return [_event(item) for item in items if isinstance(item, dict)]


def _depth(value: Any) -> int:
    """How deep arrays and objects nest (without recursion, stopping past MAX_DEPTH)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _event(item: Mapping[str, Any]) -> Event:
    raw = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    event_id = (
        str(item.get("sg_event_id") or "")
        or "sha256:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()
    )
    try:
        at = datetime.fromtimestamp(int(item.get("timestamp", 0)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        at = datetime.fromtimestamp(0, UTC)
    recipient = item.get("recipient_id")
    recipient = str(recipient) if isinstance(recipient, str | int) else ""
    email = item.get("email")  # null, a number, "": not an address (never str() it into "None")
    return Event(
        event_id=event_id,
        event=str(item.get("event", "")),
        email=email.strip() if isinstance(email, str) else "",
        at=at,
        campaign_id=str(item.get("campaign_id", "") or ""),
        recipient_id=recipient,
        data=item,
        raw=raw,
    )


def suppression_for(event: Event) -> tuple[str, str] | None:
    """``(reason, detail)`` when the event means the address must not be mailed again."""
    kind = event.event
    data = event.data
    if kind == "bounce":
        # "blocked" is a temporary refusal (reputation, content); only a real bounce is final
        if str(data.get("type", "bounce")) != "bounce":
            return None
        return "bounced", str(data.get("reason", ""))[:500]
    if kind == "dropped":
        reason = str(data.get("reason", "")).strip().lower()
        mapped = _DROPPED.get(reason)
        return (mapped, f"dropped: {data.get('reason', '')}") if mapped else None
    if kind == "spamreport":
        return "spam_report", ""
    if kind == "unsubscribe":
        return "unsubscribed", "SendGrid unsubscribe"
    if kind == "group_unsubscribe":
        return "group_unsubscribed", f"group {data.get('asm_group_id', '')}".strip()
    return None


def is_address(email: str) -> bool:
    """Could this be an address at all? (SendGrid always sends one; anything else is junk.)"""
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in email)


@dataclass
class WebhookResult:
    events: int = 0
    duplicates: int = 0
    suppressed: int = 0
    resubscribed: int = 0
    ledger: int = 0
    unmatched: int = 0  # ledger events without our custom_args
    invalid: int = 0  # events without a usable address: skipped, never suppressed or recorded

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def process_events(
    events: Sequence[Event],
    *,
    store: AudienceStore,
    now: datetime,
    sink: EventSink | None = None,
) -> WebhookResult:
    """Apply events once each: suppressions, then the ledger (when a sink is given)."""
    result = WebhookResult(events=len(events))
    for ev in events:
        if not is_address(ev.email):
            result.invalid += 1
            continue
        at = ev.at if ev.at.timestamp() > 0 else now
        row = WebhookEventRow(
            event_id=ev.event_id,
            event=ev.event,
            email=ev.email,
            campaign_id=ev.campaign_id,
            recipient_id=ev.recipient_id,
            at=ev.at.isoformat(timespec="seconds"),
            raw=ev.raw,
        )
        if store.has_webhook_event(ev.event_id):
            result.duplicates += 1
            continue
        suppression = suppression_for(ev)
        if suppression:
            reason, detail = suppression
            if store.suppress(ev.email, reason=reason, source="sendgrid-webhook", now=at,
                              detail=detail):  # fmt: skip
                result.suppressed += 1
        elif ev.event == "group_resubscribe" and store.unsuppress(
            ev.email, source="sendgrid-webhook", now=at, only_reasons=("group_unsubscribed",)
        ):
            result.resubscribed += 1
        if ev.event in LEDGER_EVENTS:
            if ev.campaign_id and ev.recipient_id:
                if sink is not None and sink.record_event(
                    ev.campaign_id, ev.recipient_id, ev.event, at, ev.event_id
                ):
                    result.ledger += 1
            else:
                result.unmatched += 1
        # recorded last: if anything above fails, SendGrid's retry applies the event again
        # (suppress and the ledger are idempotent themselves)
        if not store.record_webhook_event(row, received=now):
            result.duplicates += 1  # a concurrent request handled it meanwhile
    return result
