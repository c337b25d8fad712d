"""Build one complete email message (multipart/alternative) with the standard library.

Used by ``newsletter render`` (``email.eml``), the preview and the outbox transport, so a file
written for a mail client and a message in the outbox carry the same headers a real send has.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

import idna

from newsletter.config import Settings
from newsletter.personalize import UNSUBSCRIBE_URL, one_line
from newsletter.render import personalize_email
from newsletter.rendered import RenderedIssue
from newsletter.unsubscribe import list_unsubscribe_headers

SMTP_UTF8 = SMTP.clone(utf8=True)  # for an address whose local part is not ASCII (RFC 6532)

# Headers the builder owns; a caller's ``headers`` may not replace them.
_OWN = frozenset({"from", "to", "subject", "date", "message-id", "mime-version", "reply-to"})


def _address(email: str, name: str) -> tuple[Address, bool]:
    """The address for a header, and whether it needs SMTPUTF8 (RFC 6532) to be written.

    An internationalised domain is written in its ASCII form (``xn--bcher-kva.de``), which
    every mail system reads; only a non-ASCII local part needs a UTF-8 header.
    """
    local, _, domain = email.rpartition("@")
    if not domain.isascii():
        with contextlib.suppress(idna.IDNAError):  # not a valid IDN: written as UTF-8 below
            domain = idna.encode(domain, uts46=True).decode("ascii")
    address = Address(display_name=one_line(name), username=local, domain=domain)
    return address, not (local.isascii() and domain.isascii())


def build_message(
    *,
    from_email: str,
    from_name: str = "",
    reply_to: str = "",
    to: str,
    to_name: str = "",
    subject: str,
    html: str,
    text: str,
    headers: Mapping[str, str] | None = None,
    now: datetime,
    message_id: str = "",
) -> EmailMessage:
    """A multipart/alternative message: the text part first, the HTML part last (preferred).

    ``headers`` are extra headers such as ``List-Unsubscribe`` and ``List-Unsubscribe-Post``.
    No value can break the message: every header value is made one line (:func:`one_line`),
    and internationalised domains are written in their ASCII (punycode) form.
    ``message_id`` is used as given (``<id@domain>``); when empty, one is made for the sender's
    domain. ``now`` must be timezone-aware.
    """
    sender, utf8_from = _address(from_email, from_name)
    recipient, utf8_to = _address(to, to_name)
    msg = EmailMessage(policy=SMTP_UTF8 if utf8_from or utf8_to else SMTP)
    msg["From"] = sender
    msg["To"] = recipient
    if reply_to:
        msg["Reply-To"] = one_line(reply_to)
    msg["Subject"] = one_line(subject)
    msg["Date"] = format_datetime(now)
    domain = from_email.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = message_id or make_msgid(domain=domain)
    for name, value in (headers or {}).items():
        if name.lower() in _OWN:
            raise ValueError(f"header {name!r} is set by build_message itself")
        msg[name] = one_line(value)
    msg["MIME-Version"] = "1.0"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


@dataclass(frozen=True)
class OneEmail:
    """An issue filled in for one reader: what ``render`` writes and the preview shows."""

    subject: str
    html: str
    text: str
    message: EmailMessage


def email_for(
    issue: RenderedIssue,
    settings: Settings,
    *,
    to: str,
    to_name: str,
    values: Mapping[str, str],
    now: datetime,
    message_id: str = "",
) -> OneEmail:
    """``issue`` personalized with ``values`` (see :mod:`newsletter.personalize`), as a complete
    message with the headers a real send has (List-Unsubscribe included)."""
    subject, html, text = personalize_email(issue, values)
    email = settings.email
    message = build_message(
        from_email=email.from_email,
        from_name=email.from_name,
        reply_to=email.reply_to,
        to=to,
        to_name=to_name,
        subject=subject,
        html=html,
        text=text,
        headers=list_unsubscribe_headers(values[UNSUBSCRIBE_URL], settings.unsubscribe.mailto),
        now=now,
        message_id=message_id,
    )
    return OneEmail(subject, html, text, message)
