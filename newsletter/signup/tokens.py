"""Confirmation links and the keyed hash of a client address.

A confirmation token is ``base64url(version | id | expiry | email tag | mac)``, built the way
unsubscribe tokens are (:mod:`newsletter.unsubscribe`), with keys derived from
``NEWSLETTER_SECRET`` for purposes of their own, so neither token is any good as the other:

- ``id``: the pending subscriber's id (a varint; ids are never reused).
- ``expiry``: minutes since the Unix epoch, a varint; after it the link is refused.
- ``email tag``: 4 bytes of a keyed hash of the address the email went to, so a link never
  confirms an address it was not sent to.
- ``mac``: 12 bytes of HMAC-SHA256 over everything before it, compared in constant time.

Pure functions: the secret and ``now`` are arguments.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.errors import SecretMissing
from newsletter.unsubscribe import InvalidToken, _key, _read_varint, _tag, _varint

VERSION = 1
TAG_BYTES = 4
MAC_BYTES = 12
MAX_TOKEN_CHARS = 64
_CONFIRM_PURPOSE = b"signup-confirm/v1"
_TAG_PURPOSE = b"signup-email/v1"
_CLIENT_PURPOSE = b"signup-client/v1"
_B64URL = re.compile(r"[A-Za-z0-9_-]{8,64}")


class InvalidLink(InvalidToken):
    """The confirmation link was not made by us with this secret (changed, cut short)."""


class ExpiredLink(InvalidToken):
    """A confirmation link we made, but its time is up."""


@dataclass(frozen=True)
class ConfirmClaims:
    subscriber_id: int
    expires: datetime
    email_tag: bytes

    def matches(self, secret: str, email: str) -> bool:
        """Was the link made for this address?"""
        return hmac.compare_digest(self.email_tag, _tag(_key(secret, _TAG_PURPOSE), email))


def make_confirm_token(secret: str, subscriber_id: int, email: str, *, expires: datetime) -> str:
    if not secret:
        raise SecretMissing("a confirmation link needs NEWSLETTER_SECRET")
    if subscriber_id < 1:
        raise ValueError("subscriber ids start at 1")
    minutes = int(expires.timestamp()) // 60
    payload = (
        bytes([VERSION])
        + _varint(subscriber_id)
        + _varint(minutes)
        + _tag(_key(secret, _TAG_PURPOSE), email)
    )
    raw = payload + _key(secret, _CONFIRM_PURPOSE).digest(payload)[:MAC_BYTES]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify_confirm_token(secret: str, token: str, *, now: datetime) -> ConfirmClaims:
    """The claims of a link we made that has not expired; :class:`InvalidLink` for anything we
    did not make, :class:`ExpiredLink` for one of ours whose time is up."""
    bad = InvalidLink("this confirmation link is not valid (it may be cut short or changed)")
    if not secret or len(token) > MAX_TOKEN_CHARS or not _B64URL.fullmatch(token):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError as err:
        raise bad from err
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise bad  # one spelling per token
    if len(raw) < 1 + 1 + 1 + TAG_BYTES + MAC_BYTES or raw[0] != VERSION:
        raise bad
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, _key(secret, _CONFIRM_PURPOSE).digest(payload)[:MAC_BYTES]):
        raise bad
    try:
        subscriber_id, pos = _read_varint(payload, 1)
        minutes, pos = _read_varint(payload, pos)
    except InvalidToken as err:
        raise bad from err
    if len(payload) - pos != TAG_BYTES or subscriber_id < 1:
        raise bad
    expires = datetime.fromtimestamp(minutes * 60, UTC)
    if now >= expires:
        raise ExpiredLink("this confirmation link has expired")
    return ConfirmClaims(subscriber_id, expires, payload[pos:])


def client_hash(secret: str, address: str) -> str:
    """A keyed hash of a client address (32 hex digits): the same client gets the same value,
    so limits and consent records can name it, but without the secret it cannot be turned back
    into the address (the IPv4 space is small enough to try all of a plain hash)."""
    if not address:
        return ""
    return _key(secret, _CLIENT_PURPOSE).digest(address.encode("utf-8"))[:16].hex()
