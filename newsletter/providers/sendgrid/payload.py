"""The SendGrid v3 ``mail/send`` request for one batch, and SendGrid's documented limits.

:func:`build_body` is what the transport sends: the JSON text built in one pass (each string
escaped by the json module's C encoder), checking every limit on the way, because for a
million recipients a dict-then-``json.dumps`` pass costs more than the rest of the sender.
:func:`build_payload` + :func:`check_limits` are the same request as plain data, the readable
reference; a test holds the two equal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _q
from typing import Any

from newsletter.errors import ProviderRejected
from newsletter.personalize import ALL_TOKENS
from newsletter.transports.base import Batch, Outcome, Status

MAX_RECIPIENTS = 1000  # to + cc + bcc over the whole request
MAX_PERSONAL_BYTES = 10_000  # substitutions + custom_args, per personalization
MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_SCHEDULE_SECONDS = 72 * 3600
MAX_CATEGORIES = 10
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    )
)


def used_tokens(batch: Batch) -> list[str]:
    """The personal tokens the issue's HTML or text contains, in a fixed order."""
    found = batch.issue.html_template.tokens | batch.issue.text_template.tokens
    return [t for t in ALL_TOKENS if t in found]


def _bad(what: str) -> ProviderRejected:
    return ProviderRejected(f"request not sent: {what}", status=None)


def _shared(batch: Batch) -> dict[str, Any]:
    """Everything but the personalizations, in the order SendGrid documents them."""
    issue = batch.issue
    sender: dict[str, str] = {"email": batch.sender.email}
    if batch.sender.name:
        sender["name"] = batch.sender.name
    out: dict[str, Any] = {
        "from": sender,
        "subject": batch.subject_prefix + issue.subject,
        "content": [
            {"type": "text/plain", "value": issue.text},
            {"type": "text/html", "value": issue.html},
        ],
    }
    if batch.sender.reply_to:
        out["reply_to"] = {"email": batch.sender.reply_to}
    if batch.categories:
        out["categories"] = list(batch.categories)
    if batch.asm_group_id:
        out["asm"] = {"group_id": batch.asm_group_id}
    if batch.send_at:
        out["send_at"] = batch.send_at
    if batch.batch_id:
        out["batch_id"] = batch.batch_id
    if batch.sandbox:
        out["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return out


def _nbytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass(frozen=True)
class Request:
    """One mail/send body, and the recipients left out of it because of their own values.

    ``body`` is None when every recipient was left out (then no request is made).
    """

    body: str | None
    rejected: list[Outcome]


# what SendGrid accepts as an address, checked cheaply: one @, a dot in the domain, no spaces,
# quotes, brackets or separators (imports validate fully; this keeps one bad row from costing
# the other 999 their email)
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\]+\.[^@\s<>()\[\],;:\"\\.]+")


def _refuse(email: str, why: str) -> Outcome:
    return Outcome(email, Status.REJECTED, reason=f"not sent to {email}: {why}")


def build_body(batch: Batch, *, now: float) -> Request:
    """The request body as JSON text (pure ASCII).

    A limit of the whole request raises ProviderRejected. A recipient whose own values break a
    limit (personal data over 10,000 bytes, a malformed address) is left out of the body and
    returned in ``rejected``, so the rest of the batch is still sent.
    """
    issue = batch.issue
    if len(batch.recipients) > MAX_RECIPIENTS:
        raise _bad(f"{len(batch.recipients)} recipients in one request (limit {MAX_RECIPIENTS})")
    if len(batch.categories) > MAX_CATEGORIES:
        raise _bad(f"{len(batch.categories)} categories (limit {MAX_CATEGORIES})")
    if batch.send_at and batch.send_at - now > MAX_SCHEDULE_SECONDS:
        raise _bad("send_at is more than 72 hours ahead; schedule it later or send now")
    keys = [(k, _q(k) + ":") for k in used_tokens(batch)]
    subject = issue.subject_template if issue.subject_template.tokens else None
    prefix = batch.subject_prefix
    tail = f',"send_at":{int(batch.send_at)}}}' if batch.send_at else "}"
    seen: set[str] = set()
    people: list[str] = []
    rejected: list[Outcome] = []
    # header names and custom_args keys repeat in every personalization: check and quote once
    header_keys: dict[str, str] = {}
    arg_keys: dict[str, str] = {}

    def header_key(name: str) -> str:
        if name.lower() in RESERVED_HEADERS:
            raise _bad(f"header {name!r} is reserved by SendGrid")
        header_keys[name] = out = _q(name) + ":"
        return out

    def arg_key(name: str) -> str:
        arg_keys[name] = out = _q(name) + ":"
        return out

    for r in batch.recipients:
        email = r.email
        low = email.lower()
        if low in seen:
            raise _bad(f"{email} appears twice in one request")
        seen.add(low)
        if not _ADDRESS.fullmatch(email):
            rejected.append(_refuse(email, "not a valid email address; correct or remove it"))
            continue
        name = ',"name":' + _q(r.name) if r.name else ""
        parts = ['{"to":[{"email":', _q(email), name, "}]"]
        personal = 0
        subs = r.substitutions
        if keys:
            items = []
            for k, qk in keys:
                v = subs.get(k)
                if v is not None:
                    items.append(qk + _q(v))
                    personal += len(k) + (len(v) if v.isascii() else _nbytes(v))
            if items:
                parts.append(',"substitutions":{' + ",".join(items) + "}")
        if subject is not None:
            parts.append(',"subject":' + _q(prefix + subject.fill(subs)))
        if r.headers:
            parts.append(
                ',"headers":{'
                + ",".join(
                    (header_keys.get(k) or header_key(k)) + _q(v) for k, v in r.headers.items()
                )
                + "}"
            )
        if r.custom_args:
            items = []
            for k, v in r.custom_args.items():
                items.append((arg_keys.get(k) or arg_key(k)) + _q(v))
                personal += _nbytes(k) + _nbytes(v)
            parts.append(',"custom_args":{' + ",".join(items) + "}")
        if personal > MAX_PERSONAL_BYTES:
            rejected.append(
                _refuse(
                    email,
                    f"personal values (substitutions and custom_args) take {personal} bytes, "
                    f"SendGrid's limit is {MAX_PERSONAL_BYTES}; shorten them (e.g. the first name)",
                )
            )
            continue
        parts.append(tail)
        people.append("".join(parts))
    if not people:
        return Request(None, rejected)
    shared = json.dumps(_shared(batch))
    body = '{"personalizations":[' + ",".join(people) + "]," + shared[1:]
    if len(body) > MAX_BODY_BYTES:  # ASCII: characters are bytes
        raise _bad(
            f"request body is {len(body)} bytes (limit {MAX_BODY_BYTES}); use smaller batches"
        )
    return Request(body, rejected)


def build_payload(batch: Batch) -> dict[str, Any]:
    """The mail/send JSON for one batch (a plain dict: easy to test and to measure)."""
    issue = batch.issue
    used = used_tokens(batch)
    subject_tokens = issue.subject_template.tokens
    per_subject = bool(subject_tokens)
    personalizations: list[dict[str, Any]] = []
    for r in batch.recipients:
        to: dict[str, str] = {"email": r.email}
        if r.name:
            to["name"] = r.name
        p: dict[str, Any] = {"to": [to]}
        subs = {k: r.substitutions[k] for k in used if k in r.substitutions}
        if subs:
            p["substitutions"] = subs
        if per_subject:
            p["subject"] = batch.subject_prefix + issue.subject_template.fill(r.substitutions)
        if r.headers:
            p["headers"] = dict(r.headers)
        if r.custom_args:
            p["custom_args"] = dict(r.custom_args)
        if batch.send_at:
            p["send_at"] = batch.send_at
        personalizations.append(p)
    return {"personalizations": personalizations, **_shared(batch)}


def check_limits(payload: dict[str, Any], *, now: float) -> None:
    """Raise ProviderRejected (before any request) if the payload breaks a documented limit."""

    people = payload.get("personalizations", [])
    seen: set[str] = set()
    count = 0
    size_bound = 0
    for i, p in enumerate(people):
        for kind in ("to", "cc", "bcc"):
            for addr in p.get(kind, []):
                count += 1
                email = addr["email"].lower()
                if email in seen:
                    raise _bad(f"{addr['email']} appears twice in one request")
                seen.add(email)
        for name in p.get("headers", {}):
            if name.lower() in RESERVED_HEADERS:
                raise _bad(f"personalization {i}: header {name!r} is reserved by SendGrid")
        personal = sum(
            len(k.encode()) + len(v.encode())
            for part in ("substitutions", "custom_args")
            for k, v in p.get(part, {}).items()
        )
        if personal > MAX_PERSONAL_BYTES:
            raise _bad(
                f"personalization {i}: substitutions and custom_args take {personal} bytes "
                f"(limit {MAX_PERSONAL_BYTES}); shorten the personal values"
            )
        size_bound += personal + sum(len(v) for v in p.get("headers", {}).values()) + 300
        send_at = p.get("send_at", 0)
        if send_at and send_at - now > MAX_SCHEDULE_SECONDS:
            raise _bad("send_at is more than 72 hours ahead; schedule it later or send now")
    if count > MAX_RECIPIENTS:
        raise _bad(f"{count} recipients in one request (limit {MAX_RECIPIENTS})")
    if payload.get("send_at", 0) and payload["send_at"] - now > MAX_SCHEDULE_SECONDS:
        raise _bad("send_at is more than 72 hours ahead; schedule it later or send now")
    categories = payload.get("categories", [])
    if len(categories) > MAX_CATEGORIES:
        raise _bad(f"{len(categories)} categories (limit {MAX_CATEGORIES})")
    size_bound += sum(len(c["value"]) for c in payload.get("content", []))
    # JSON escapes a character in at most 6 bytes; measure exactly only when that could matter
    if size_bound * 6 > MAX_BODY_BYTES:
        size = len(json.dumps(payload).encode("utf-8"))
        if size > MAX_BODY_BYTES:
            raise _bad(
                f"request body is {size} bytes (limit {MAX_BODY_BYTES}); use smaller batches"
            )
