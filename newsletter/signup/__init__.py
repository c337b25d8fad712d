"""Sign-up with double opt-in: the rules the web form, the CLI and scripts share.

    clean_form()      what a form or JSON body asked for, checked (SignupInvalid names the field)
    Policy            the [signup] settings, checked once: limits, tags, origins, link lifetime
    submit()          record one sign-up (pending + consent + confirmation email queued)
    check_link()      what a confirmation link points at, without changing anything (GET)
    confirm()         confirm it (POST)
    queue_confirmations(), purge_pending()   for imports and the nightly clean-up

Nothing here answers differently for a new, pending, confirmed or suppressed address: callers
get an outcome for their logs and tests, and must show the reader the same thing for all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from email_validator import EmailNotValidError

from newsletter.config import Settings
from newsletter.errors import ConfigError, NewsletterError
from newsletter.signup.tokens import (
    ConfirmClaims,
    ExpiredLink,
    InvalidLink,
    client_hash,
    make_confirm_token,
    verify_confirm_token,
)
from newsletter.store import Store
from newsletter.store.signup import (
    ALREADY,
    QUEUED,
    RATE_LIMITED,
    REFUSED,
    THROTTLED,
    Limit,
    PendingInfo,
    SignupRecord,
)
from newsletter.subscribers import MAX_NAME_CHARS, normalise_email

__all__ = [
    "ALREADY",
    "HONEYPOT",
    "QUEUED",
    "RATE_LIMITED",
    "REFUSED",
    "THROTTLED",
    "ExpiredLink",
    "InvalidLink",
    "LinkTarget",
    "Policy",
    "SignupForm",
    "SignupInvalid",
    "check_link",
    "clean_form",
    "confirm",
    "confirm_url",
    "make_confirm_token",
    "purge_pending",
    "queue_confirmations",
    "submit",
]

HONEYPOT = "website"  # a field people never see; bots fill in every field they find
RESEND_AFTER = timedelta(hours=1)  # at most one confirmation email per address per hour
MAX_PAGE_CHARS = 500
MAX_SOURCE_CHARS = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


class SignupInvalid(NewsletterError):
    """A sign-up whose fields are wrong; ``field`` names the one to fix."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field

    def format(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class SignupForm:
    email: str
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    source: str = "form"
    page: str = ""
    bot: bool = False  # the honeypot was filled in: answer as usual, record nothing


@dataclass(frozen=True)
class Policy:
    """The ``[signup]`` settings, checked: build with :meth:`from_settings`."""

    allowed_tags: tuple[str, ...] = ()
    confirm_for: timedelta = timedelta(days=7)
    per_client_per_hour: int = 20
    per_minute: int = 300
    allowed_origins: tuple[str, ...] = ()
    thank_you_url: str = ""
    confirmed_url: str = ""
    base_url: str = "http://127.0.0.1:8000"  # public URL of `newsletter serve`
    enabled: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        su = settings.signup
        where = settings.config_path

        def bad(key: str, message: str) -> ConfigError:
            return ConfigError(message, path=where, key=f"signup.{key}")

        if su.confirm_days < 1 or su.confirm_days > 60:
            raise bad("confirm_days", f"{su.confirm_days} days: use 1 to 60 (7 is usual)")
        for key in ("per_client_per_hour", "per_minute"):
            if getattr(su, key) < 0:
                raise bad(key, "must be 0 (no limit) or more")
        for tag in su.tags:
            if not tag.strip() or ";" in tag or len(tag) > 100:
                raise bad("tags", f"{tag!r} is not a usable tag (non-empty, no ';')")
        base = settings.unsubscribe.base_url.rstrip("/")
        site_origin = origin_of(settings.site.url)
        origin = su.allowed_origin.rstrip("/") or site_origin
        if origin_of(origin) != origin:
            raise bad(
                "allowed_origin",
                f"{su.allowed_origin!r} is not an origin; write scheme://host[:port] with no "
                f"path, e.g. {site_origin}",
            )
        for key in ("thank_you_url", "confirmed_url"):
            value = getattr(su, key)
            if value and (
                not value.startswith(("https://", "http://")) or any(c in value for c in "<>\"' ")
            ):
                raise bad(key, f"{value!r} must be a plain http(s) URL, e.g. {site_origin}/thanks/")
        origins = tuple(dict.fromkeys([origin, origin_of(base)]))
        return cls(
            allowed_tags=tuple(t.strip() for t in su.tags),
            confirm_for=timedelta(days=su.confirm_days),
            per_client_per_hour=su.per_client_per_hour,
            per_minute=su.per_minute,
            allowed_origins=origins,
            thank_you_url=su.thank_you_url,
            confirmed_url=su.confirmed_url,
            base_url=base,
            enabled=su.enabled,
        )

    def limits(self, client: str) -> list[Limit]:
        out = [Limit("global", 60, self.per_minute)]
        if client:
            out.append(Limit(f"client:{client}", 3600, self.per_client_per_hour))
        return out


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL (lower-case), or "" when it has none."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _text(values: Mapping[str, str], name: str, limit: int) -> str:
    value = values.get(name, "").strip()
    if _CONTROL.search(value):
        raise SignupInvalid("contains a line break or control character", field=name)
    if len(value) > limit:
        raise SignupInvalid(f"is longer than {limit} characters", field=name)
    return value


def clean_form(
    values: Mapping[str, str], tags: Sequence[str], policy: Policy, *, referer: str = ""
) -> SignupForm:
    """Check a form's fields (``email``, ``first_name``, ``last_name``, ``tags``, ``form``,
    ``page``, and the honeypot); :class:`SignupInvalid` names the field that is wrong."""
    bot = bool(values.get(HONEYPOT, "").strip())
    raw = values.get("email", "").strip()
    if not raw:
        raise SignupInvalid("please enter your email address", field="email")
    if len(raw) > 254:
        raise SignupInvalid("is too long to be an email address", field="email")
    try:
        email = normalise_email(raw)
    except EmailNotValidError as err:
        raise SignupInvalid(f"is not a valid email address ({err})", field="email") from err
    first = _text(values, "first_name", MAX_NAME_CHARS)
    last = _text(values, "last_name", MAX_NAME_CHARS)
    wanted = tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
    unknown = [t for t in wanted if t not in policy.allowed_tags]
    if unknown:
        offered = ", ".join(policy.allowed_tags) or "none"
        raise SignupInvalid(
            f"{unknown[0]!r} is not a list this form offers (offered: {offered})", field="tags"
        )
    source = values.get("form", "").strip() or "form"
    if len(source) > MAX_SOURCE_CHARS or not _SOURCE.fullmatch(source):
        raise SignupInvalid("use letters, digits, '.', '_', ':' or '-'", field="form")
    page = (values.get("page", "").strip() or referer)[:MAX_PAGE_CHARS]
    if _CONTROL.search(page) or not (page == "" or page.startswith(("https://", "http://"))):
        page = ""  # not a page address: not worth refusing a sign-up over
    return SignupForm(email, first, last, wanted, source, page, bot)


def submit(
    store: Store,
    form: SignupForm,
    *,
    client_address: str,
    secret: str,
    policy: Policy,
    now: datetime,
) -> str:
    """Record one sign-up; returns what happened (``QUEUED``, ``THROTTLED``, ``ALREADY``,
    ``REFUSED``, ``RATE_LIMITED``, or ``"bot"``). Only ``RATE_LIMITED`` may be shown to the
    client: every other outcome must look the same."""
    if form.bot:
        return "bot"
    client = client_hash(secret, client_address)
    record = SignupRecord(
        email=form.email,
        first_name=form.first_name,
        last_name=form.last_name,
        tags=form.tags,
        source=f"form:{form.source}",
        page=form.page,
        client_hash=client,
    )
    return store.signup.record(
        record,
        now=now,
        limits=policy.limits(client),
        resend_after=RESEND_AFTER,
        expires_after=policy.confirm_for,
    )


def confirm_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/subscribe/confirm/{token}"


@dataclass(frozen=True)
class LinkTarget:
    """Who a valid confirmation link is for, and where they stand now."""

    info: PendingInfo
    claims: ConfirmClaims

    @property
    def email(self) -> str:
        return self.info.email

    @property
    def confirmed(self) -> bool:
        """Nothing left to confirm: confirmed, and not unsubscribed by their own click."""
        from newsletter.store.signup import SELF_SERVICE_SOURCES

        sup = self.info.suppression
        comeback = sup is not None and sup[0] == "unsubscribed" and sup[1] in SELF_SERVICE_SOURCES
        return self.info.status == "confirmed" and not comeback


def check_link(store: Store, token: str, *, secret: str, now: datetime) -> LinkTarget:
    """What a link is for, changing nothing. :class:`InvalidLink` when it is not ours or its
    subscriber is gone (purged, removed, or now a different address); :class:`ExpiredLink`."""
    claims = verify_confirm_token(secret, token, now=now)
    info = store.signup.pending_info(claims.subscriber_id)
    if info is None or not claims.matches(secret, info.email):
        raise InvalidLink("this confirmation link is no longer valid; please sign up again")
    return LinkTarget(info, claims)


def confirm(
    store: Store, token: str, *, secret: str, client_address: str, now: datetime
) -> LinkTarget:
    """Confirm the subscriber a link is for (a second time changes nothing)."""
    target = check_link(store, token, secret=secret, now=now)
    done = store.signup.confirm(
        target.info.subscriber_id,
        target.email,
        now=now,
        source="confirmation-link",
        client_hash=client_hash(secret, client_address),
    )
    if not done:  # removed between the two statements
        raise InvalidLink("this confirmation link is no longer valid; please sign up again")
    return target


def queue_confirmations(store: Store, *, policy: Policy, now: datetime) -> int:
    """Queue a confirmation email for every pending subscriber never sent one."""
    return store.signup.queue_unmailed(now=now, expires_after=policy.confirm_for)


def purge_pending(store: Store, *, policy: Policy, now: datetime) -> int:
    """Delete pending subscribers whose confirmation link has expired; returns how many."""
    return store.signup.purge_pending(now=now, older_than=policy.confirm_for)
