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

import hmac
import os
import secrets as pysecrets
from dataclasses import dataclass
from pathlib import Path

from newsletter.config import Secrets
from newsletter.errors import ConfigError, NewsletterError, SecretMissing
from newsletter.signing import TAG_BYTES, Mac, derive, read_varint, seal, tag, unseal, varint

VERSION = 1
SECRET_FILE = ".newsletter-secret"
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


def make_token(secret: str, subscriber_id: int, email: str) -> str:
    """A URL-safe token that lets whoever holds it unsubscribe this subscriber at this address."""
    if not secret:
        raise SecretMissing("an unsubscribe token needs NEWSLETTER_SECRET")
    return _token(derive(secret, _TAG_PURPOSE), derive(secret, _MAC_PURPOSE), subscriber_id, email)


def _token(tag_key: Mac, mac_key: Mac, subscriber_id: int, email: str) -> str:
    if subscriber_id < 1:
        raise ValueError("subscriber ids start at 1")
    return seal(_VERSION_BYTE + varint(subscriber_id) + tag(tag_key, email), mac_key)


class UnsubscribeLinks:
    """The unsubscribe URL and RFC 8058 headers of every recipient of a send, made fast.

    The same values as :func:`unsubscribe_url` (:func:`make_token`) and
    :func:`list_unsubscribe_headers`, with the keys and fixed parts worked out once.
    """

    def __init__(self, secret: str, base_url: str, mailto: str = "") -> None:
        if not secret:
            raise SecretMissing("an unsubscribe token needs NEWSLETTER_SECRET")
        self._tag_key = derive(secret, _TAG_PURPOSE)
        self._mac_key = derive(secret, _MAC_PURPOSE)
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
    mac_key = derive(secret, _MAC_PURPOSE) if secret else None
    payload = None
    if mac_key is not None:
        payload = unseal(token, mac_key, version=VERSION, min_payload=1 + 1 + TAG_BYTES)
    if payload is None:
        raise bad
    try:
        subscriber_id, pos = read_varint(payload, 1)
    except ValueError as err:
        raise bad from err
    if len(payload) - pos != TAG_BYTES or subscriber_id < 1:
        raise bad
    return TokenClaims(subscriber_id=subscriber_id, email_tag=payload[pos:])


def token_matches_email(secret: str, claims: TokenClaims, email: str) -> bool:
    """Was the token made for this address? (False after the subscriber's address changed.)"""
    return hmac.compare_digest(claims.email_tag, tag(derive(secret, _TAG_PURPOSE), email))


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
