"""Compact signed tokens for links: the parts unsubscribe and confirmation links share.

A token is ``base64url(payload | mac)`` without padding: ``payload`` starts with a version byte
and is built by the caller (varints, a keyed tag of the address); ``mac`` is the first
``MAC_BYTES`` of HMAC-SHA256 over the payload. Every key is derived from ``NEWSLETTER_SECRET``
for one purpose (``derive``), so a token made for one purpose is no good for another.

Pure functions: the secret is an argument. The formats built on these are pinned by tests
(tests/test_unsubscribe_tokens.py, tests/test_signup_store.py) that compute the bytes with the
standard ``hmac`` module: links already in people's inboxes must keep working.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re

TAG_BYTES = 4  # of a keyed hash of the address a link was sent to
MAC_BYTES = 12  # 96 bits of HMAC-SHA256
MAX_TOKEN_CHARS = 64
_B64URL = re.compile(r"[A-Za-z0-9_-]{8,64}")


class Mac:
    """HMAC-SHA256 under one fixed key (RFC 2104), its two padded states hashed once.

    The same bytes as ``hmac.digest(key, msg, "sha256")`` at less than half the cost: a send
    makes two MACs per recipient, and OpenSSL's one-shot HMAC sets up the key every call.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # longer than SHA-256's block: hashed first, as RFC 2104 says
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=16)
def derive(secret: str, purpose: bytes) -> Mac:
    """The key for ``purpose``, derived from ``secret``. Cached: a send makes one token per
    recipient, and deriving the keys again each time was half the cost of a token."""
    return Mac(hmac.digest(secret.encode("utf-8"), b"newsletter/" + purpose, "sha256"))


def tag(key: Mac, email: str) -> bytes:
    """``TAG_BYTES`` of a keyed hash of an address (case and surrounding spaces ignored)."""
    return key.digest(email.strip().lower().encode("utf-8"))[:TAG_BYTES]


def varint(n: int) -> bytes:
    """``n`` (0 or more) in 7-bit groups, least significant first, high bit = more follow."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``data[pos:]`` and the position after it; ValueError for a truncated,
    overlong (over 9 bytes) or non-canonical one (a trailing zero group)."""
    value = shift = 0
    for i in range(pos, min(len(data), pos + 9)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > pos:
                raise ValueError("non-canonical varint")
            return value, i + 1
        shift += 7
    raise ValueError("truncated varint")


def seal(payload: bytes, key: Mac) -> str:
    """The token for ``payload``: its MAC appended, base64url without padding."""
    raw = payload + key.digest(payload)[:MAC_BYTES]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unseal(token: str, key: Mac, *, version: int, min_payload: int) -> bytes | None:
    """The payload of a token :func:`seal` made with ``key``, or None for anything else.

    None for: characters outside base64url, more than ``MAX_TOKEN_CHARS``, a spelling that is
    not the one :func:`seal` makes (unused low bits set), a payload shorter than
    ``min_payload`` or not starting with ``version``, a MAC that does not match (compared in
    constant time).
    """
    if len(token) > MAX_TOKEN_CHARS or not _B64URL.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        return None  # one spelling per token
    if len(raw) < min_payload + MAC_BYTES or raw[0] != version:
        return None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, key.digest(payload)[:MAC_BYTES]):
        return None
    return payload
