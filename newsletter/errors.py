"""One exception root for everything the tool reports to a user.

    NewsletterError                  exit code 1; .format() is the one line a user sees
     ├── ConfigError                 bad newsletter.toml, bad flag value, missing secret (exit 2)
     │    └── SecretMissing
     ├── PostError                   an unreadable post: path, line, field (exit 2 with --strict)
     ├── RenderError                 a template that cannot be rendered: template, line
     ├── LintFailed                  lint found errors; the send stops
     ├── InputError                  a bad user file (CSV row, intro): path, line, field
     ├── FeedError                   a feed cannot be fetched or read: source (exit 2)
     ├── StoreError                  the SQLite store: locked, corrupt, newer schema
     │    ├── CampaignLocked         another process is sending this campaign (exit 4)
     │    ├── StoreFault             the store file is damaged, read-only, locked too long,
     │    │                          emptied or missing (exit 7): what to do, in one line
     │    └── StoreUnavailable       the PostgreSQL server cannot be reached (exit 2)
     └── TransportError              a provider answered badly or not at all
          ├── RateLimited            429: retry after .retry_after seconds
          ├── ProviderUnavailable    5xx or a connection refused before sending: safe to retry
          ├── ProviderRejected       4xx other than 429: do not retry; .body says why
          └── DeliveryUnknown        the request may have reached the provider (timeout, dropped
                                     connection after sending): never retried automatically

Foreign errors are translated in exactly one place each (YAML/TOML in content.py, HTTP in the
SendGrid transport) with ``raise ... from err``. Configuration errors are separate from per-item
errors, so no "skip the bad post and continue" path can swallow them.
"""

from __future__ import annotations

from pathlib import Path


class NewsletterError(Exception):
    """Root of every error the tool reports. ``format()`` is what the CLI prints."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def format(self) -> str:
        return self.message


class ConfigError(NewsletterError):
    """A setting, flag or environment variable is wrong. Never skipped."""

    exit_code = 2

    def __init__(self, message: str, *, path: Path | str | None = None, key: str | None = None):
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.key = key

    def format(self) -> str:
        where = self.path or ""
        if self.key:
            where = f"{where}: {self.key}" if where else self.key
        return f"{where}: {self.message}" if where else self.message


class SecretMissing(ConfigError):
    """A secret the command needs is not in the environment."""


class LocatedError(NewsletterError):
    """An error at a place in a user's file: ``path:line: message``."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: Path | str,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = str(path)
        self.line = line
        self.field = field

    def format(self) -> str:
        loc = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{loc}: {self.message}"


class PostError(LocatedError):
    """A post that cannot be read or lacks a required field."""


class InputError(LocatedError):
    """A user-supplied file other than a post (CSV row, intro file) has a problem."""


class RenderError(NewsletterError):
    """A template failed: ``template:line: message``."""

    exit_code = 2

    def __init__(self, message: str, *, template: str | None = None, line: int | None = None):
        super().__init__(message)
        self.template = template
        self.line = line

    def format(self) -> str:
        if self.template is None:
            return self.message
        loc = self.template if self.line is None else f"{self.template}:{self.line}"
        return f"{loc}: {self.message}"


class LintFailed(NewsletterError):
    """Lint found errors; carries the findings so the CLI can print them."""

    exit_code = 3

    def __init__(self, message: str, findings: list[object]) -> None:
        super().__init__(message)
        self.findings = findings


class StoreError(NewsletterError):
    """The store cannot do what was asked (locked, corrupt, schema from a newer version)."""


class CampaignLocked(StoreError):
    """Another process holds the send lock of this campaign."""

    exit_code = 4


class StoreFault(StoreError):
    """The store file itself cannot be used; the message names it and says what to do."""

    exit_code = 7


class StoreUnavailable(StoreError):
    """The PostgreSQL store cannot be reached (host, database and cause; never the password)."""

    exit_code = 2


class TransportError(NewsletterError):
    """A provider call failed. Carries the HTTP status and the provider's response body."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    def format(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.message}{status}"


class RateLimited(TransportError):
    """HTTP 429. ``retry_after`` is the wait the provider asked for, in seconds, if it said."""

    def __init__(
        self, message: str, *, retry_after: float | None, status: int = 429, body: str = ""
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class ProviderUnavailable(TransportError):
    """5xx, or the connection failed before the request was sent. Safe to retry."""


class ProviderRejected(TransportError):
    """4xx other than 429: the request itself is wrong. Retrying will not help."""


class DeliveryUnknown(TransportError):
    """The request may have reached the provider; its answer was lost. Never retried silently."""


class CampaignUnfinished(NewsletterError):
    """A digest to this audience is interrupted or paused: it is finished before another starts."""

    exit_code = 2


class CampaignPaused(NewsletterError):
    """The send stopped with progress saved (too many failures, a signal, bad credentials)."""

    exit_code = 5


class CampaignIncomplete(NewsletterError):
    """The send finished, but not every recipient was accepted."""

    exit_code = 6


class FeedError(NewsletterError):
    """A feed (``--feed``, ``[site] feeds``) could not be fetched or read: ``source: message``.

    Never skipped: an issue built without one of its sources would look complete and be wrong.
    """

    exit_code = 2

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source

    def format(self) -> str:
        return f"{self.source}: {self.message}"
