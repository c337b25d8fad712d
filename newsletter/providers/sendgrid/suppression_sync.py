"""Pull SendGrid's suppression lists into the local list (``newsletter suppressions sync``).

Lists: global unsubscribes, bounces, spam reports, and the suppressions of unsubscribe groups.
Each is a paged GET (``limit`` at most 500, ``offset``). HTTP answers are translated by
:mod:`newsletter.providers.sendgrid.http_errors`, like those of mail/send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from newsletter.config import Secrets, Settings
from newsletter.errors import ProviderRejected, ProviderUnavailable, RateLimited, TransportError
from newsletter.providers.sendgrid.http_errors import translate
from newsletter.store.audience import AudienceStore
from newsletter.transports.pacing import Backoff, Wait

PAGE_LIMIT = 500

# list name -> (path, our reason)
LISTS: dict[str, tuple[str, str]] = {
    "unsubscribes": ("/v3/suppression/unsubscribes", "unsubscribed"),
    "bounces": ("/v3/suppression/bounces", "bounced"),
    "spam_reports": ("/v3/suppression/spam_reports", "spam_report"),
}


@dataclass(frozen=True)
class RemoteSuppression:
    email: str
    reason: str  # one of newsletter.store.audience.REASONS
    detail: str = ""


class SuppressionClient:
    """A small client for SendGrid's suppression endpoints."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        timeout: float = 30.0,
        page_limit: int = PAGE_LIMIT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        max_retries: int = 5,
        on_wait: Callable[[Wait], None] | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )
        self.page_limit = max(1, min(page_limit, PAGE_LIMIT))
        self._sleep = sleep
        self._now = now
        self.backoff = backoff or Backoff()  # the same backoff as mail/send batches
        self.max_retries = max(0, max_retries)
        self.on_wait = on_wait

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SuppressionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, int]) -> Any:
        """One page, retried like a mail/send batch: 429 (after the wait SendGrid asks for, up
        to the backoff's ``max_wait``), 5xx, timeouts and refused connections."""
        what = f"GET {path}"
        attempt = 0
        while True:
            try:
                return self._get_once(path, params, what)
            except (RateLimited, ProviderUnavailable) as err:
                if attempt >= self.max_retries:
                    if attempt:
                        err.message += f" (gave up after {attempt + 1} tries)"
                    raise
                asked = err.retry_after if isinstance(err, RateLimited) else None
                delay = self.backoff.delay(attempt, asked)
                if self.on_wait is not None:
                    why = "the SendGrid rate limit (HTTP 429)" if asked is not None else None
                    reason = why or f"a retry of {what} after: {err.format()}"
                    until = datetime.fromtimestamp(self._now() + delay, UTC)
                    self.on_wait(Wait(reason, until, delay, asked))
                self._sleep(delay)
                attempt += 1

    def _get_once(self, path: str, params: dict[str, int], what: str) -> Any:
        try:
            response = self._http.get(path, params=params)
        except httpx.TimeoutException as err:
            raise ProviderUnavailable(f"SendGrid did not answer {what} in time") from err
        except httpx.HTTPError as err:
            raise ProviderUnavailable(f"cannot reach SendGrid for {what} ({err})") from err
        if response.status_code >= 400:
            raise translate(
                response.status_code,
                response.content,
                response.headers,
                what=what,
                now=self._now(),
                auth_hint="SENDGRID_API_KEY needs read access to Suppressions",
            )
        try:
            return response.json()
        except ValueError as err:
            raise TransportError(
                f"SendGrid answered {what} with something that is not JSON",
                status=response.status_code,
            ) from err

    def _pages(self, path: str) -> Iterator[list[Any]]:
        offset = 0
        previous: list[Any] | None = None
        while True:
            page = self._get(path, {"limit": self.page_limit, "offset": offset})
            if not isinstance(page, list):
                raise TransportError(f"SendGrid answered GET {path} with a non-list", status=200)
            if page == previous and page:  # the endpoint ignores paging: we have it all
                return
            yield page
            if len(page) < self.page_limit or len(page) > self.page_limit:
                return
            previous = page
            offset += len(page)

    def global_list(self, name: str) -> Iterator[list[RemoteSuppression]]:
        """Pages of one global list: ``unsubscribes``, ``bounces`` or ``spam_reports``."""
        path, reason = LISTS[name]
        for page in self._pages(path):
            out = []
            for item in page:
                if not isinstance(item, dict) or not isinstance(item.get("email"), str):
                    raise TransportError(f"SendGrid listed an entry without an email in {path}")
                detail = ""
                if name == "bounces":
                    detail = " ".join(
                        str(item.get(k, "")) for k in ("status", "reason") if item.get(k)
                    )[:500]
                out.append(RemoteSuppression(item["email"], reason, detail))
            yield out

    def group(self, group_id: int) -> Iterator[list[RemoteSuppression]]:
        """Pages of the addresses suppressed in one unsubscribe group."""
        path = f"/v3/asm/groups/{group_id}/suppressions"
        for page in self._pages(path):
            if not all(isinstance(e, str) for e in page):
                raise TransportError(f"SendGrid listed a non-address in {path}")
            yield [RemoteSuppression(e, "group_unsubscribed", f"group {group_id}") for e in page]


@dataclass
class SyncReport:
    fetched: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"{name}: {self.fetched[name]} listed, {self.added.get(name, 0)} new"
            for name in self.fetched
        ]
        return "; ".join(parts) if parts else "nothing to sync"


def sync_suppressions(
    store: AudienceStore,
    client: SuppressionClient,
    *,
    now: datetime,
    group_ids: Sequence[int] = (),
) -> SyncReport:
    """Add every address on SendGrid's lists to the local suppression list (never removes).

    The first page of every list is asked for at once (one thread each): ``send`` starts with
    this, and most lists fit one page, so it costs one round trip instead of one per list.
    Pages are applied in list order, so an address on two lists gets the reason of the first,
    and further pages are read one at a time, so memory holds a few pages at most.
    """
    report = SyncReport()
    sources: list[tuple[str, Iterator[list[RemoteSuppression]]]] = [
        (name, client.global_list(name)) for name in LISTS
    ]
    sources += [(f"group {gid}", client.group(gid)) for gid in group_ids if gid]
    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        firsts = [pool.submit(next, pages, None) for _, pages in sources]
        for (name, pages), first in zip(sources, firsts, strict=True):
            report.fetched[name] = 0
            report.added[name] = 0
            page = first.result()  # this list's error, if it had one, is raised here
            while page is not None:
                report.fetched[name] += len(page)
                items = [(s.email, s.reason, s.detail) for s in page if s.email.strip()]
                report.added[name] += store.suppress_many(items, source="sendgrid-sync", now=now)
                page = next(pages, None)
    return report


def client_for(
    settings: Settings, secrets: Secrets, *, on_wait: Callable[[Wait], None] | None = None
) -> SuppressionClient:
    """A client for the configured account that retries and waits like a mail/send batch."""
    send = settings.send
    return SuppressionClient(
        secrets.sendgrid_api_key,
        secrets.sendgrid_api_url,
        timeout=send.timeout_seconds,
        backoff=Backoff(max_wait=send.max_wait_seconds),
        max_retries=send.max_retries,
        on_wait=on_wait,
    )


def sync_before_send(
    settings: Settings,
    secrets: Secrets,
    audience: AudienceStore,
    *,
    skip: bool = False,
    on_wait: Callable[[Wait], None] | None = None,
) -> str | None:
    """Before a send: pull SendGrid's suppressions when a key is configured and
    ``send.sync_suppressions`` is on. Returns the summary line, or None when not configured."""
    if not secrets.sendgrid_api_key or not settings.send.sync_suppressions:
        return None
    if skip:
        return "SendGrid's lists not pulled (--skip-sync); the local list applies"
    groups = [settings.send.asm_group_id] if settings.send.asm_group_id else []
    with client_for(settings, secrets, on_wait=on_wait) as client:
        try:
            report = sync_suppressions(audience, client, now=datetime.now(UTC), group_ids=groups)
        except ProviderRejected as err:
            if err.status not in (401, 403):
                raise
            # a Mail-Send-only key is enough to send; only this extra step needs more
            raise ProviderRejected(
                "SendGrid refused to list suppressions before sending: SENDGRID_API_KEY lacks "
                "the 'Suppressions' read permission (or is not a valid key) needed by the "
                "pre-send sync. Grant it (Settings > API Keys > Restricted Access), run with "
                "--skip-sync, or set send.sync_suppressions = false in newsletter.toml to send "
                "with a Mail Send key alone (the local suppression list still applies)",
                status=err.status,
                body=err.body,
            ) from err
    return report.summary()
