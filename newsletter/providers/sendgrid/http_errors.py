"""SendGrid's HTTP answers translated to :mod:`newsletter.errors`, in this one place.

    429                  -> RateLimited(retry_after=retry_after(headers))
    401 / 403            -> ProviderRejected: the API key (or its permissions)
    5xx                  -> ProviderUnavailable (safe to retry)
    other 4xx            -> ProviderRejected (not retried; SendGrid's reasons in the message)

Every SendGrid client here (mail/send, the batch endpoints, the suppression lists) calls
:func:`translate`; every wait a 429 asks for is read by :func:`retry_after`.
"""

from __future__ import annotations

import json
import math
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from newsletter.errors import ProviderRejected, ProviderUnavailable, RateLimited, TransportError

# X-RateLimit-Reset is a Unix time in seconds. Values this large can only be milliseconds
# (1e11 s is the year 5138); values this small can only be a number of seconds to wait.
_MILLISECONDS_FROM = 1e11
_EPOCH_FROM = 1e8


class Headers(Protocol):
    """Response headers: an ``http.client.HTTPMessage`` or ``httpx.Headers``."""

    def get(self, name: str, /) -> Any: ...


def retry_after(headers: Headers | None, *, now: float) -> float | None:
    """Seconds SendGrid asks us to wait, or None if it did not say (or said nonsense).

    ``X-RateLimit-Reset`` (SendGrid: the Unix time the limit resets) wins over ``Retry-After``
    (seconds, or an HTTP date). A reset given in milliseconds is read as milliseconds; a reset
    that is a small number is read as seconds to wait. The result is never negative; it is not
    capped here (the caller knows how long it is willing to wait).
    """
    if headers is None:
        return None
    reset = _number(headers.get("X-RateLimit-Reset"))
    if reset is not None:
        if reset >= _MILLISECONDS_FROM:
            reset /= 1000.0
        return max(0.0, reset - now) if reset >= _EPOCH_FROM else max(0.0, reset)
    after = headers.get("Retry-After")
    if after is None:
        return None
    seconds = _number(after)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        return max(0.0, parsedate_to_datetime(after.strip()).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def reason(body: str) -> str:
    """SendGrid's error messages joined into one line (or the raw body, shortened)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors:
        return "; ".join(
            f"{e['field']}: {e.get('message', '')}" if e.get("field") else str(e.get("message"))
            for e in errors
            if isinstance(e, dict)
        )
    return body.strip()[:300] or "(no body)"


def translate(
    status: int,
    body: bytes | str,
    headers: Headers | None,
    *,
    what: str,
    now: float,
    auth_hint: str = "",
) -> TransportError:
    """The error for SendGrid's answer ``status`` to ``what`` (e.g. ``GET /v3/...``)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = text[:2000]
    if status == 429:
        return RateLimited(
            f"SendGrid rate limit reached on {what}",
            retry_after=retry_after(headers, now=now),
            body=text,
        )
    if status >= 500:
        return ProviderUnavailable(f"SendGrid failed on {what}: {reason(text)}", status=status,
                                   body=text)  # fmt: skip
    if status in (401, 403):
        hint = f": {auth_hint}" if auth_hint else f": {reason(text)}"
        return ProviderRejected(
            f"SendGrid refused the API key for {what}{hint}", status=status, body=text
        )
    violations = headers.get("sl-violations") if headers is not None else None
    why = reason(text) if not violations else f"{reason(text)} {violations}"
    return ProviderRejected(f"SendGrid rejected {what}: {why}", status=status, body=text)
