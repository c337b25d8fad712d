"""Address identity shared by the store and its callers."""

from __future__ import annotations


def email_key(email: str) -> str:
    """The identity of an address: trimmed and lower-cased as a whole (SendGrid's rule)."""
    return email.strip().lower()
