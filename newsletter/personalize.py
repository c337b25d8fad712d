"""Per-recipient values in a rendered email: render once, personalize by split-and-join.

The renderer leaves tokens such as ``%%UNSUBSCRIBE_URL%%`` in its HTML, text and subject. The
HTML part and the text part use *different* tokens (``%%FIRST_NAME%%`` vs ``%%FIRST_NAME_TEXT%%``)
because their values differ: in HTML a first name like ``O'Brien & Co`` must be escaped, in the
text part it must not. The same token names are used as SendGrid ``substitutions`` keys, so a
SendGrid batch and the outbox produce the same bytes per recipient.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

# token name -> literal placeholder. Plain ASCII, no characters that HTML escaping, MJML or CSS
# inlining would touch, and nothing a lint check for leftover template syntax ({{, {%) matches.
UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
FIRST_NAME = "%%FIRST_NAME%%"
FIRST_NAME_TEXT = "%%FIRST_NAME_TEXT%%"
EMAIL = "%%EMAIL%%"
EMAIL_TEXT = "%%EMAIL_TEXT%%"
# a sign-up confirmation email's link (newsletter.signup.mail); "" in a campaign
CONFIRM_URL = "%%CONFIRM_URL%%"

HTML_TOKENS = (UNSUBSCRIBE_URL, FIRST_NAME, EMAIL, CONFIRM_URL)
TEXT_TOKENS = (UNSUBSCRIBE_URL, FIRST_NAME_TEXT, EMAIL_TEXT, CONFIRM_URL)
ALL_TOKENS = (UNSUBSCRIBE_URL, FIRST_NAME, FIRST_NAME_TEXT, EMAIL, EMAIL_TEXT, CONFIRM_URL)

_TOKEN_RE = re.compile("|".join(re.escape(t) for t in ALL_TOKENS))
# what ends a line somewhere (str.splitlines, the email package, mail clients): CR, LF, VT, FF,
# FS/GS/RS, NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR, and the other C0/C1 controls
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: str) -> str:
    """``value`` with every line break and control character turned into one space.

    A header value (a subject, a name in ``To:``) with a line break would end the header, or
    make the email package refuse to build the message; a name like ``"Ann\u2028Lee"`` reads
    as ``"Ann Lee"`` instead.
    """
    if value.isprintable():  # the common case, checked in C
        return value
    return _LINE_BREAKING.sub(" ", value).strip()


@dataclass(frozen=True)
class Personal:
    """What is personal about one recipient."""

    email: str
    first_name: str = ""
    unsubscribe_url: str = ""


def token_values(person: Personal, *, first_name_fallback: str = "there") -> dict[str, str]:
    """The value of every token for one recipient, escaped for the part each token lives in."""
    return values_for(person.email, person.first_name, person.unsubscribe_url, first_name_fallback)


def values_for(
    email: str,
    first_name: str,
    unsubscribe_url: str,
    first_name_fallback: str = "there",
    confirm_url: str = "",
) -> dict[str, str]:
    """:func:`token_values` without building a :class:`Personal` (once per recipient in a send)."""
    name = one_line(first_name.strip()) or first_name_fallback
    return {
        UNSUBSCRIBE_URL: unsubscribe_url,
        FIRST_NAME: html.escape(name, quote=True),
        FIRST_NAME_TEXT: name,
        EMAIL: html.escape(email, quote=True),
        EMAIL_TEXT: email,
        CONFIRM_URL: confirm_url,
    }


class Template:
    """A string split once at its tokens; :meth:`fill` joins it with one recipient's values."""

    __slots__ = ("_parts", "source", "tokens")

    def __init__(self, source: str) -> None:
        self.source = source
        pieces = _TOKEN_RE.split(source)
        found = _TOKEN_RE.findall(source)
        # _parts alternates literal, token, literal, token, ..., literal
        parts: list[str] = [pieces[0]]
        for tok, lit in zip(found, pieces[1:], strict=True):
            parts.append(tok)
            parts.append(lit)
        self._parts = tuple(parts)
        self.tokens = frozenset(found)

    def fill(self, values: Mapping[str, str]) -> str:
        parts = self._parts
        out = list(parts)
        for i in range(1, len(parts), 2):
            out[i] = values[parts[i]]
        return "".join(out)

    def __len__(self) -> int:
        return len(self.source)


def longest_values(
    *, unsubscribe_url: str, first_name: str = "", email: str = ""
) -> dict[str, str]:
    """Token values for the lint size check: the longest value each token takes in a send."""
    return token_values(
        Personal(email=email, first_name=first_name, unsubscribe_url=unsubscribe_url)
    )
