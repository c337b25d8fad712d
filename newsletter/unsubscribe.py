"""Signed unsubscribe tokens and the List-Unsubscribe headers (RFC 2369, RFC 8058).

A token is ``base64url(version | id | email tag | mac)``, about 27 characters:

- ``version``: one byte (1), so the format can change later without guessing.
- ``id``: the subscriber id as a varint. Ids are never reused (AUTOINCREMENT), so the token
  names one subscriber for good. The id is not a secret; knowing it does not help forge a token.
- ``email tag``: 4 bytes of a keyed hash of the address the mail went to. If the subscriber's
  address changes later, old links stop applying to them (they no longer reach that person), and
  a link never unsubscribes an address it was not sent to. It reveals nothing without the secret.
- ``mac``: the first 12 bytes (96 bits) of HMAC-SHA256 over everything before it, with a key
  derived from ``NEWSLETTER_SECRET`` for this purpose only, so a token is no good for anything
  else the secret might sign. Compared in constant time.

Everything here is pure: the secret is an argument. Only :func:`signing_secret` touches a file,
and only the composition roots call it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets as pysecrets
from dataclasses import dataclass
from pathlib import Path

from newsletter.config import Secrets
from newsletter.errors import ConfigError, NewsletterError, SecretMissing

VERSION = 1
TAG_BYTES = 4
MAC_BYTES = 12
MAX_TOKEN_CHARS = 64
SECRET_FILE = ".newsletter-secret"
_B64URL = re.compile(r"[A-Za-z0-9_-]{8,64}")
_VERSION_BYTE = bytes([VERSION])
_TAG_PURPOSE = b"unsubscribe-email/v1"
_MAC_PURPOSE = b"unsubscribe-token/v1"
_ONE_CLICK = "List-Unsubscribe=One-Click"


class InvalidToken(NewsletterError):
    """The token was not made by us with this secret (tampered, truncated, random)."""


@dataclass(frozen=True)
class TokenClaims:
    subscriber_id: int
    email_tag: bytes  # compare with :func:`token_matches_email`


class _Sha256Mac:
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


@functools.lru_cache(maxsize=8)
def _key(secret: str, purpose: bytes) -> _Sha256Mac:
    # Derived once per (secret, purpose): a send makes one token per recipient, and deriving the
    # two keys again each time was half the cost of a token.
    return _Sha256Mac(hmac.digest(secret.encode("utf-8"), b"newsletter/" + purpose, "sha256"))


def _tag(tag_key: _Sha256Mac, email: str) -> bytes:
    return tag_key.digest(email.strip().lower().encode("utf-8"))[:TAG_BYTES]


def _email_tag(secret: str, email: str) -> bytes:
    return _tag(_key(secret, _TAG_PURPOSE), email)


def _mac(secret: str, payload: bytes) -> bytes:
    return _key(secret, _MAC_PURPOSE).digest(payload)[:MAC_BYTES]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(len(data), pos + 9)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > pos:
                raise InvalidToken("unsubscribe link is not valid")  # non-canonical varint
            return value, i + 1
        shift += 7
    raise InvalidToken("unsubscribe link is not valid")


def make_token(secret: str, subscriber_id: int, email: str) -> str:
    """A URL-safe token that lets whoever holds it unsubscribe this subscriber at this address."""
    if not secret:
        raise SecretMissing("an unsubscribe token needs NEWSLETTER_SECRET")
    return _token(_key(secret, _TAG_PURPOSE), _key(secret, _MAC_PURPOSE), subscriber_id, email)


def _token(tag_key: _Sha256Mac, mac_key: _Sha256Mac, subscriber_id: int, email: str) -> str:
    if subscriber_id < 1:
        raise ValueError("subscriber ids start at 1")
    payload = _VERSION_BYTE + _varint(subscriber_id) + _tag(tag_key, email)
    raw = payload + mac_key.digest(payload)[:MAC_BYTES]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class UnsubscribeLinks:
    """The unsubscribe URL and RFC 8058 headers of every recipient of a send, made fast.

    The same values as :func:`unsubscribe_url` (:func:`make_token`) and
    :func:`list_unsubscribe_headers`, with the keys and fixed parts worked out once.
    """

    def __init__(self, secret: str, base_url: str, mailto: str = "") -> None:
        if not secret:
            raise SecretMissing("an unsubscribe token needs NEWSLETTER_SECRET")
        self._tag_key = _key(secret, _TAG_PURPOSE)
        self._mac_key = _key(secret, _MAC_PURPOSE)
        self._prefix = f"{base_url.rstrip('/')}/u/"
        # what follows the URL in List-Unsubscribe: ">" or ">, <mailto:...>"
        self._after = list_unsubscribe_headers("", mailto)["List-Unsubscribe"][1:]

    def url(self, subscriber_id: int, email: str) -> str:
        return self._prefix + _token(self._tag_key, self._mac_key, subscriber_id, email)

    def headers(self, url: str) -> dict[str, str]:
        return {"List-Unsubscribe": "<" + url + self._after, "List-Unsubscribe-Post": _ONE_CLICK}


def verify_token(secret: str, token: str) -> TokenClaims:
    """The claims of a token we made; :class:`InvalidToken` for anything else."""
    bad = InvalidToken("unsubscribe link is not valid (it may be cut short or changed)")
    if not secret or len(token) > MAX_TOKEN_CHARS or not _B64URL.fullmatch(token):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError as err:
        raise bad from err
    # one spelling per token: reject encodings that decode to the same bytes (unused low bits)
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise bad
    if len(raw) < 1 + 1 + TAG_BYTES + MAC_BYTES or raw[0] != VERSION:
        raise bad
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise bad
    subscriber_id, pos = _read_varint(payload, 1)
    if len(payload) - pos != TAG_BYTES or subscriber_id < 1:
        raise bad
    return TokenClaims(subscriber_id=subscriber_id, email_tag=payload[pos:])


def token_matches_email(secret: str, claims: TokenClaims, email: str) -> bool:
    """Was the token made for this address? (False after the subscriber's address changed.)"""
    return hmac.compare_digest(claims.email_tag, _email_tag(secret, email))


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"


def list_unsubscribe_headers(url: str, mailto: str = "") -> dict[str, str]:
    """The RFC 8058 one-click pair; the mailto part only when an unsubscribe mailbox is set."""
    parts = [f"<{url}>"]
    if mailto:
        address = mailto.removeprefix("mailto:")
        parts.append(f"<mailto:{address}?subject=unsubscribe>")
    return {"List-Unsubscribe": ", ".join(parts), "List-Unsubscribe-Post": _ONE_CLICK}


MIN_SECRET_BYTES = 32
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def check_secret_strength(secret: str) -> None:
    """Refuse a ``NEWSLETTER_SECRET`` shorter than 32 bytes: every unsubscribe token is signed
    with it, so a short one can be guessed and any address unsubscribed by a stranger."""
    size = len(secret.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"too short ({size} bytes): the server needs at least "
            f"{MIN_SECRET_BYTES} bytes, or anyone could forge unsubscribe links. Make one with: "
            f"{MAKE_SECRET}",
            key="NEWSLETTER_SECRET",
        )


def signing_secret(secrets: Secrets, *, allow_generated: bool, keep_at: Path) -> str:
    """``NEWSLETTER_SECRET`` from the environment, or (outbox/demo only) a generated one.

    A generated secret is kept in ``keep_at`` (mode 0600) so links in mail already written keep
    working after a restart. Without either, :class:`SecretMissing` says what to do. Its length
    is checked by ``serve`` (:func:`check_secret_strength`) and, for real sends, with their other
    unsafe settings (:func:`newsletter.campaign.wiring.unsafe_settings`).
    """
    if secrets.signing_key:
        return secrets.signing_key
    if not allow_generated:
        raise SecretMissing(
            "NEWSLETTER_SECRET is not set; unsubscribe links must be signed. Set it to a long "
            "random value that stays the same between runs, e.g. export NEWSLETTER_SECRET="
            "\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\""
        )
    try:
        return keep_at.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as err:
        raise SecretMissing(f"{keep_at}: cannot read the generated secret ({err})") from err
    value = pysecrets.token_urlsafe(32)
    keep_at.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(keep_at, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return keep_at.read_text(encoding="ascii").strip()
    except OSError as err:
        raise SecretMissing(f"{keep_at}: cannot keep a generated secret ({err})") from err
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value
