"""Build one complete email message (multipart/alternative) with the standard library.

Used by ``newsletter render`` (``email.eml``), the preview and the outbox transport, so a file
written for a mail client and a message in the outbox carry the same headers a real send has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from newsletter.config import Settings
from newsletter.personalize import UNSUBSCRIBE_URL
from newsletter.render import personalize_email
from newsletter.rendered import RenderedIssue
from newsletter.unsubscribe import list_unsubscribe_headers

# Headers the builder owns; a caller's ``headers`` may not replace them.
_OWN = frozenset({"from", "to", "subject", "date", "message-id", "mime-version", "reply-to"})


def _address(email: str, name: str) -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


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
    ``message_id`` is used as given (``<id@domain>``); when empty, one is made for the sender's
    domain. ``now`` must be timezone-aware.
    """
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(from_email, from_name)
    msg["To"] = _address(to, to_name)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    domain = from_email.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = message_id or make_msgid(domain=domain)
    for name, value in (headers or {}).items():
        if name.lower() in _OWN:
            raise ValueError(f"header {name!r} is set by build_message itself")
        msg[name] = value
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
