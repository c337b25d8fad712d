"""Settings: ``newsletter.toml`` plus CLI overrides, read once and passed down as values.

Secrets (the SendGrid API key, the unsubscribe signing key) never live in the file: they come from
the environment through :func:`load_secrets`, and their ``repr`` hides them.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ConfigError
from newsletter.theme import ThemeSettings, check_theme

DEFAULT_CONFIG_NAME = "newsletter.toml"


@dataclass(frozen=True)
class SiteSettings:
    name: str = "My Site"
    url: str = "https://example.com"
    permalink: str = "/:year/:month/:day/:slug/"
    timezone: str = "UTC"
    content: tuple[str, ...] = ("content",)
    logo_url: str = ""
    language: str = "en"
    # values that posts refer to as {{ site.x }} (Jekyll/Eleventy globals)
    values: Mapping[str, Any] = field(default_factory=dict)
    # the static site generator whose config supplies defaults: auto (detect), a name, or none
    generator: str = "auto"
    feeds: tuple[str, ...] = ()  # RSS/Atom/JSON feed URLs or files read as posts

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class EmailSettings:
    from_email: str = "news@example.com"
    from_name: str = ""
    reply_to: str = ""
    postal_address: str = ""
    templates: str = "templates"
    subject_digest: str = "{{ site.name }} — {{ issue_date.strftime('%B %Y') }}"
    subject_post: str = "{{ lead.title }}"
    intro: str = ""  # Markdown text, or a path to a Markdown file
    preheader: str = ""
    first_name_fallback: str = "there"
    inliner: str = "premailer"  # or "css-inline"
    archive_url: str = ""  # public URL where archive/ is published
    archive_dir: str = "archive"
    utm_source: str = ""
    utm_medium: str = "email"
    utm_campaign: str = ""
    why: str = "You are receiving this email because you subscribed to our newsletter."
    max_html_kb: int = 100  # a longer blast is cut (Gmail clips above 102 KB); 0 = never cut
    group_by: str = ""  # "" | "category": digest sections by each post's first category


@dataclass(frozen=True)
class UnsubscribeSettings:
    base_url: str = (
        "http://127.0.0.1:8000"  # public URL of `newsletter serve`; links are BASE/u/TOKEN
    )
    mailto: str = ""  # optional unsubscribe mailbox for the List-Unsubscribe mailto: part
    webhook_public_key: str = ""  # SendGrid event webhook verification key (base64 DER, public)
    webhook_max_age_seconds: int = 600


@dataclass(frozen=True)
class SendSettings:
    transport: str = "auto"  # auto | outbox | sendgrid
    batch_size: int = 1000
    concurrency: int = 4
    max_per_second: float = 0.0  # 0 = no limit
    max_per_hour: int = 0  # 0 = no limit
    max_retries: int = 5
    max_consecutive_failures: int = 5
    timeout_seconds: float = 30.0
    categories: tuple[str, ...] = ("newsletter",)
    asm_group_id: int = 0  # SendGrid unsubscribe group; 0 = none
    outbox_dir: str = "outbox"
    sync_suppressions: bool = True
    max_wait_seconds: float = 900.0  # longest wait a 429 (or a retry) may impose at once


@dataclass(frozen=True)
class SignupSettings:
    """``[signup]``: the subscribe form of ``newsletter serve`` (see docs/signup.md)."""

    enabled: bool = True  # serve mounts POST /subscribe and the confirmation pages
    tags: tuple[str, ...] = ()  # tags a form may ask for; any other tag is refused
    confirm_days: int = 7  # how long a confirmation link works; purge-pending after that
    per_client_per_hour: int = 20  # sign-ups from one client address (0 = no limit)
    per_minute: int = 300  # sign-ups from everyone together (0 = no limit)
    allowed_origin: str = ""  # the site allowed to post the form; default: site.url's origin
    thank_you_url: str = ""  # where the plain form goes next; default: serve's own page
    confirmed_url: str = ""  # where a confirmed reader goes next; default: serve's own page


@dataclass(frozen=True)
class Settings:
    """Everything the tool knows about a site, with paths resolved against ``root``."""

    root: Path = Path(".")
    config_path: Path | None = None
    site: SiteSettings = field(default_factory=SiteSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    unsubscribe: UnsubscribeSettings = field(default_factory=UnsubscribeSettings)
    send: SendSettings = field(default_factory=SendSettings)
    store_path: str = "newsletter.db"
    # a postgresql:// URL ([store] url, or NEWSLETTER_DATABASE_URL): a shared PostgreSQL store
    # instead of the SQLite file; it may hold a password, so repr never shows it
    store_url: str = field(default="", repr=False)
    # dotted keys set in the file or by a flag ("site.url"); generator defaults fill the rest
    explicit: frozenset[str] = frozenset()
    theme: ThemeSettings = field(default_factory=ThemeSettings)
    signup: SignupSettings = field(default_factory=SignupSettings)

    def path(self, value: str) -> Path:
        """Resolve a path setting relative to the folder that holds the config file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def content_dirs(self) -> list[Path]:
        return [self.path(c) for c in self.site.content]

    @property
    def db_path(self) -> Path:
        return self.path(self.store_path)

    @property
    def store_target(self) -> Path | str:
        """What the store is opened from: the PostgreSQL URL when set, else the SQLite file."""
        return self.store_url or self.db_path

    @property
    def store_exists(self) -> bool:
        """Whether there is a store yet (a PostgreSQL store always counts as there)."""
        return bool(self.store_url) or self.db_path.exists()


@dataclass(frozen=True)
class Secrets:
    """Secrets from the environment. ``repr`` never shows them."""

    sendgrid_api_key: str = field(default="", repr=False)
    signing_key: str = field(default="", repr=False)
    sendgrid_api_url: str = "https://api.sendgrid.com"

    def __repr__(self) -> str:
        key = "set" if self.sendgrid_api_key else "unset"
        sec = "set" if self.signing_key else "unset"
        return (
            f"Secrets(sendgrid_api_key={key}, signing_key={sec}, api_url={self.sendgrid_api_url})"
        )


def load_secrets(environ: Mapping[str, str]) -> Secrets:
    return Secrets(
        sendgrid_api_key=environ.get("SENDGRID_API_KEY", "").strip(),
        signing_key=environ.get("NEWSLETTER_SECRET", "").strip(),
        sendgrid_api_url=environ.get("SENDGRID_API_URL", "https://api.sendgrid.com").rstrip("/"),
    )


_SECTIONS: dict[str, type] = {
    "site": SiteSettings,
    "email": EmailSettings,
    "unsubscribe": UnsubscribeSettings,
    "send": SendSettings,
    "theme": ThemeSettings,
    "signup": SignupSettings,
}


def _coerce(section: str, cls: type, raw: Mapping[str, Any], path: Path) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for key, value in raw.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown setting; known settings in [{section}] are: {known}",
                path=path,
                key=f"{section}.{key}",
            )
        default = getattr(defaults, key)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = (value,)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(
                    "expected a string or a list of strings", path=path, key=f"{section}.{key}"
                )
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError("expected true or false", path=path, key=f"{section}.{key}")
        elif isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError("expected a number", path=path, key=f"{section}.{key}")
            value = type(default)(value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError("expected a string", path=path, key=f"{section}.{key}")
        elif isinstance(default, Mapping) and not isinstance(value, Mapping):
            raise ConfigError("expected a table", path=path, key=f"{section}.{key}")
        kwargs[key] = value
    return cls(**kwargs)


_PG_SCHEMES = ("postgresql://", "postgres://")


def check_store_url(
    url: str,
    *,
    path: Path | None = None,
    key: str,
    secret_ok: bool = False,
    files_too: bool = False,
) -> str:
    """A store URL must name PostgreSQL (or, with ``files_too``, may be a SQLite file path);
    the message never repeats it (it may hold a password).

    A password is taken only from the environment (``secret_ok``): in ``newsletter.toml`` it
    would sit in a file that is copied, shared and committed, and in a flag it would show in
    the process list and the shell's history.
    """
    if files_too and not url.startswith(_PG_SCHEMES):
        return url
    if url and not url.startswith(_PG_SCHEMES):
        raise ConfigError(
            "the store URL must start with postgresql:// (for a SQLite file use "
            '[store] path = "newsletter.db")',
            path=path,
            key=key,
        )
    if url and not secret_ok and _has_password(url):
        raise ConfigError(
            "the store URL holds a password, and secrets are read from the environment only: "
            "remove it from the URL and set PGPASSWORD (or use ~/.pgpass), or put the whole "
            "URL in NEWSLETTER_DATABASE_URL",
            path=path,
            key=key,
        )
    return url


def _has_password(url: str) -> bool:
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        return bool(parts.password) or "password" in parse_qs(parts.query)
    except ValueError:  # a malformed URL: the store's connect names the problem
        return False


def load_settings(
    config: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``newsletter.toml`` (or ``config``) and apply overrides such as ``{"site.url": ...}``.

    With no ``config``, ``newsletter.toml`` in ``cwd`` is used when present; otherwise defaults.
    ``NEWSLETTER_DATABASE_URL`` in ``environ`` (default: the process environment) selects a
    PostgreSQL store and wins over ``[store] url``.
    """
    if environ is None:
        import os

        environ = os.environ
    cwd = cwd or Path.cwd()
    path = config if config is not None else cwd / DEFAULT_CONFIG_NAME
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"not valid TOML ({err}); fix the syntax", path=path) from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read the config file ({err})", path=path) from err
        root = path.resolve().parent
        config_path: Path | None = path
    elif config is not None:
        raise ConfigError("config file not found; pass an existing file to --config", path=path)
    else:
        root = cwd.resolve()
        config_path = None

    raw: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    store_path = "newsletter.db"
    store_url = ""
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError("expected a table", path=path, key=key)
            raw[key] = dict(value)
        elif key == "store":
            if (
                not isinstance(value, Mapping)
                or not isinstance(value.get("path", ""), str)
                or not isinstance(value.get("url", ""), str)
                or set(value) - {"path", "url"}
            ):
                raise ConfigError(
                    'expected [store] with path = "newsletter.db" or url = "postgresql://..."',
                    path=path,
                    key=key,
                )
            store_path = value.get("path", store_path)
            store_url = check_store_url(value.get("url", ""), path=path, key="store.url")
        else:
            known = ", ".join([*_SECTIONS, "store"])
            raise ConfigError(f"unknown section; known sections are: {known}", path=path, key=key)

    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if section == "store":
            if str(value).startswith(_PG_SCHEMES):
                store_url = check_store_url(str(value), key="--store")
            else:
                store_path = str(value)
            continue
        raw.setdefault(section, {})[key] = value

    built = {name: _coerce(name, cls, raw[name], path) for name, cls in _SECTIONS.items()}
    _check_bounds(built["send"], path)
    explicit = frozenset(f"{name}.{key}" for name, keys in raw.items() for key in keys)
    env_url = environ.get("NEWSLETTER_DATABASE_URL", "").strip()
    if env_url:
        store_url = check_store_url(env_url, key="NEWSLETTER_DATABASE_URL", secret_ok=True)
    settings = Settings(
        root=root,
        config_path=config_path,
        store_path=store_path,
        store_url=store_url,
        explicit=explicit,
        **built,
    )
    try:
        settings.site.tz  # noqa: B018 - validate early
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(
            f"unknown time zone {settings.site.timezone!r}; use an IANA name such as "
            "'Europe/Berlin' or 'UTC'",
            **_origin("site.timezone", overrides, path),
        ) from err
    if not settings.site.url.startswith(("http://", "https://")):
        raise ConfigError(
            f"site URL {settings.site.url!r} must start with https:// or http://",
            **_origin("site.url", overrides, path),
        )
    if not 0 < settings.send.max_wait_seconds <= 86400:
        raise ConfigError(
            "expected seconds between 1 and 86400 (default 900, 15 min)",
            path=path,
            key="send.max_wait_seconds",
        )
    base = settings.unsubscribe.base_url
    if not base.startswith(("http://", "https://")) or any(c in base for c in "&<>\"' ?#"):
        # the URL goes unescaped into HTML attributes, headers and SendGrid substitutions
        raise ConfigError(
            f"unsubscribe base URL {base!r} must be a plain http(s) URL with no query, fragment, "
            "spaces or quotes, e.g. https://example.org/newsletter (links are BASE/u/TOKEN)",
            path=path,
            key="unsubscribe.base_url",
        )
    check_theme(settings.theme, path)
    if settings.email.group_by not in ("", "category"):
        raise ConfigError(
            f'{settings.email.group_by!r} is not a grouping; use "category" or leave it empty',
            **_origin("email.group_by", overrides, path),
        )
    return settings


# [send] numbers and the range each must be in (inclusive); 0 means "no limit" where allowed
SEND_BOUNDS: dict[str, tuple[float, float]] = {
    "batch_size": (1, 1000),
    "concurrency": (1, 64),
    "max_per_second": (0, 1_000_000),
    "max_per_hour": (0, 1_000_000_000),
    "max_retries": (0, 100),
    "max_consecutive_failures": (1, 10_000),
    "timeout_seconds": (1, 600),
    "asm_group_id": (0, 2**31 - 1),
}


def _check_bounds(send: SendSettings, path: Path) -> None:
    """A value out of range names its line: ``newsletter.toml:31: send.concurrency: ...``."""
    for key, (low, high) in SEND_BOUNDS.items():
        value = getattr(send, key)
        if not low <= value <= high:
            raise ConfigError(
                f"{value} is out of range; use a number from {low:g} to {high:g}",
                path=_with_line(path, "send", key),
                key=f"send.{key}",
            )
    if send.transport not in ("auto", "outbox", "sendgrid", "memory"):
        raise ConfigError(
            f"unknown transport {send.transport!r}; use auto, outbox or sendgrid",
            path=_with_line(path, "send", "transport"),
            key="send.transport",
        )


def _with_line(path: Path, section: str, key: str) -> str:
    """``path:LINE`` of ``key`` inside ``[section]`` (tomllib gives no positions), else path."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return str(path)
    current = ""
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("[") and not text.startswith("[["):
            current = text.strip("[] ")
        elif current == section and text.split("=", 1)[0].strip().strip("\"'") == key:
            return f"{path}:{number}"
    return str(path)


_FLAGS = {
    "site.url": "--site-url",
    "site.timezone": "--timezone",
    "site.permalink": "--permalink",
    "site.content": "--content",
}


def _origin(dotted: str, overrides: Mapping[str, Any] | None, path: Path) -> dict[str, Any]:
    """Where a bad value came from: its command-line flag, or its key in the config file."""
    if overrides and overrides.get(dotted) is not None:
        return {"path": None, "key": _FLAGS.get(dotted, dotted)}
    return {"path": path, "key": dotted}
