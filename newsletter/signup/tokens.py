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

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.errors import SecretMissing
from newsletter.signing import TAG_BYTES, derive, read_varint, seal, tag, unseal, varint
from newsletter.unsubscribe import InvalidToken

VERSION = 1
_CONFIRM_PURPOSE = b"signup-confirm/v1"
_TAG_PURPOSE = b"signup-email/v1"
_CLIENT_PURPOSE = b"signup-client/v1"


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
        return hmac.compare_digest(self.email_tag, tag(derive(secret, _TAG_PURPOSE), email))


def make_confirm_token(secret: str, subscriber_id: int, email: str, *, expires: datetime) -> str:
    if not secret:
        raise SecretMissing("a confirmation link needs NEWSLETTER_SECRET")
    if subscriber_id < 1:
        raise ValueError("subscriber ids start at 1")
    minutes = int(expires.timestamp()) // 60
    payload = (
        bytes([VERSION])
        + varint(subscriber_id)
        + varint(minutes)
        + tag(derive(secret, _TAG_PURPOSE), email)
    )
    return seal(payload, derive(secret, _CONFIRM_PURPOSE))


def verify_confirm_token(secret: str, token: str, *, now: datetime) -> ConfirmClaims:
    """The claims of a link we made that has not expired; :class:`InvalidLink` for anything we
    did not make, :class:`ExpiredLink` for one of ours whose time is up."""
    bad = InvalidLink("this confirmation link is not valid (it may be cut short or changed)")
    payload = None
    if secret:
        key = derive(secret, _CONFIRM_PURPOSE)
        payload = unseal(token, key, version=VERSION, min_payload=1 + 1 + 1 + TAG_BYTES)
    if payload is None:
        raise bad
    try:
        subscriber_id, pos = read_varint(payload, 1)
        minutes, pos = read_varint(payload, pos)
    except ValueError as err:
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
    return derive(secret, _CLIENT_PURPOSE).digest(address.encode("utf-8"))[:16].hex()
