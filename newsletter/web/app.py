"""``newsletter serve``: the unsubscribe page, RFC 8058 one-click, and SendGrid's event webhook.

Routes:
    GET  /u/TOKEN            a page with one button; a GET alone never unsubscribes (mail scanners
                             and link prefetchers follow links)
    POST /u/TOKEN            unsubscribe at once (body ``List-Unsubscribe=One-Click``, or the page's
                             form); 200, no redirect, idempotent; ``action=resubscribe`` undoes it
    POST /webhooks/sendgrid  SendGrid Event Webhook (signature checked when a key is configured)
    GET  /healthz            200 "ok" when the database answers

The store is opened once at startup and used from a worker thread under a lock, so the event
loop never waits on SQLite and one connection serves every request.
"""

from __future__ import annotations

import html
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from newsletter.errors import NewsletterError
from newsletter.providers.sendgrid.webhooks import (
    MAX_BODY_BYTES,
    Verifier,
    WebhookRejected,
    parse_events,
    process_events,
)
from newsletter.store import Store, StorePool
from newsletter.store.db import check_file, fault
from newsletter.unsubscribe import InvalidToken, token_matches_email, verify_token
from newsletter.web.guard import ServerLimits, guarded_protocol, quiet_logs, raise_open_files_limit

if TYPE_CHECKING:
    from newsletter.web.signup import SignupWeb

log = logging.getLogger("newsletter.web")
T = TypeVar("T")
MAX_FORM_BYTES = 16 * 1024
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
# Suppressions this server made, and so may undo. One that came from SendGrid (webhook or sync)
# would only come back with the next sync, and SendGrid would drop the mail anyway.
OUR_SOURCES = ("one-click", "unsubscribe-page")
NOT_AN_UNSUBSCRIBE = (
    "This request is not an unsubscribe: a mail client sends the body "
    "List-Unsubscribe=One-Click, a person uses the button on this page. Nothing was changed.\n"
)
WEBHOOK_OFF = (
    "unsubscribe.webhook_public_key is not set: /webhooks/sendgrid refuses every event (403). "
    "Paste the verification key SendGrid shows under Settings > Mail Settings > Event Webhook "
    "> Signature Verification into newsletter.toml, or run serve --insecure-webhook to accept "
    "unsigned events (testing only: anyone could suppress any address)"
)
WEBHOOK_INSECURE = (
    "--insecure-webhook: /webhooks/sendgrid accepts unsigned events; anyone who finds it can "
    "suppress any address"
)
WEBHOOK_REFUSED = (
    "webhook refused: no verification key is configured (unsubscribe.webhook_public_key)\n"
)
BAD_TOKEN = (
    "This unsubscribe link is not valid: it may have been cut short or changed. "
    "Copy the whole link from the email, or reply to the email to ask to be removed.\n"
)


@dataclass
class WebConfig:
    store_path: Path | str  # a SQLite file or a postgresql:// URL
    secret: str
    site_name: str = "our newsletter"
    verifier: Verifier | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # without a verifier the webhook refuses every request (403) unless this is set (tests,
    # local experiments): unsigned events would let anyone suppress any address
    insecure_webhook: bool = False
    signup: SignupWeb | None = None  # the subscribe form (newsletter/web/signup.py)


class _Db:
    """The store for worker threads: SQLite's one connection in turn, or a PostgreSQL pool."""

    def __init__(self, pool: StorePool) -> None:
        self.pool = pool

    async def run(self, fn: Callable[[Store], T]) -> T:
        def call() -> T:
            with self.pool.store() as store:
                try:
                    return fn(store)
                except sqlite3.Error as err:  # the file itself: damaged, read-only, full
                    raise fault(str(store.path), err) from err

        return await run_in_threadpool(call)


@dataclass(frozen=True)
class _View:
    # "subscribed" | "unsubscribed" | "suppressed" | "removed" (the address is known but is not
    # on the list now) | "gone" (the link names no address we know)
    state: str
    email: str = ""
    reason: str = ""
    source: str = ""


def _page(site: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{html.escape(title)} · {html.escape(site)}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:32rem;
margin:4rem auto;padding:0 1rem;color:#222;line-height:1.5}}
button{{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #555;
background:#222;color:#fff;cursor:pointer}}
button.secondary{{background:#fff;color:#222}}
.muted{{color:#666;font-size:.9rem}}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
<p class="muted">{html.escape(site)}</p>
</body></html>
"""
    return HTMLResponse(doc, status_code=status, headers=PRIVATE_HEADERS)


def _form(action: str, label: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return (
        '<form method="post"><input type="hidden" name="action" '
        f'value="{action}"><button type="submit"{cls}>{label}</button></form>'
    )


def create_app(config: WebConfig) -> Starlette:
    """The ASGI app; the composition root (``newsletter serve``) builds ``config``."""
    holder: dict[str, _Db] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = StorePool(config.store_path)
        holder["db"] = _Db(store)
        if config.verifier is None:
            log.warning(WEBHOOK_INSECURE if config.insecure_webhook else WEBHOOK_OFF)
        try:
            if config.signup is None:
                yield
            else:
                async with config.signup.running():
                    yield
        finally:
            store.close()

    def db() -> _Db:
        return holder["db"]

    def claims_or_400(token: str) -> int | Response:
        try:
            return verify_token(config.secret, token).subscriber_id
        except InvalidToken:
            return PlainTextResponse(BAD_TOKEN, status_code=400, headers=PRIVATE_HEADERS)

    def address_for(store: Store, token: str, sid: int) -> str | None:
        """The address the link was sent to: the subscriber's, or (after ``subscribers remove``)
        the removed subscriber's, whoever holds that address now. None when the token's email
        tag does not match it (the link was not made for that address)."""
        email = store.audience.address_for_id(sid)
        if email is None:
            return None
        claims = verify_token(config.secret, token)
        return email if token_matches_email(config.secret, claims, email) else None

    def view(store: Store, token: str, sid: int) -> _View:
        email = address_for(store, token, sid)
        if email is None:
            return _View("gone")
        sup = store.audience.get_suppression(email)
        if sup is not None:
            state = "unsubscribed" if sup.reason == "unsubscribed" else "suppressed"
            return _View(state, email, sup.reason, sup.source)
        if store.audience.get_subscriber(email) is None:
            return _View("removed", email)
        return _View("subscribed", email)

    def render(v: _View, *, just_changed: str = "") -> HTMLResponse:
        site = config.site_name
        who = f"<p><strong>{html.escape(v.email)}</strong></p>" if v.email else ""
        if v.state == "gone":
            return _page(site, "Link not recognised", "<p>We cannot tell which address this link "
                         "was sent to, so nothing was changed. If you still get this newsletter, "
                         "use the unsubscribe link in the latest issue, or reply to it and ask "
                         "to be removed.</p>")  # fmt: skip
        if v.state == "removed":
            return _page(
                site,
                "Not on the list",
                who + "<p>This address is not on our mailing list at the moment, so it gets no "
                "newsletter from us. Unsubscribe it to make sure it is never added back.</p>"
                + _form("unsubscribe", "Unsubscribe"),
            )
        if v.state == "subscribed":
            title = "You are subscribed again" if just_changed == "resubscribed" else "Unsubscribe"
            lead = (
                "<p>Welcome back. You will get the next issue.</p>"
                if just_changed == "resubscribed"
                else "<p>Stop getting this newsletter at this address?</p>"
            )
            return _page(site, title, who + lead + _form("unsubscribe", "Unsubscribe"))
        if v.state == "unsubscribed":
            lead = who + "<p>You will not get this newsletter any more.</p>"
            if just_changed == "refused":
                lead += "<p><strong>You are still unsubscribed: nothing was changed.</strong></p>"
            if v.source in OUR_SOURCES:
                extra = "<p>Clicked by mistake?</p>" + _form(
                    "resubscribe", "Resubscribe", "secondary"
                )
            elif v.source.startswith("sendgrid"):
                extra = (
                    "<p>This address unsubscribed through SendGrid, the service that sends our "
                    "mail, so it cannot be re-subscribed from this page: it must also be removed "
                    "from SendGrid's unsubscribe list, or the mail would not be delivered. To "
                    "get the newsletter again, reply to one of our emails and ask.</p>"
                )
            else:
                extra = (
                    "<p>This address was unsubscribed by the list's owner. To get the newsletter "
                    "again, reply to one of our emails and ask.</p>"
                )
            return _page(site, "You are unsubscribed", lead + extra)
        return _page(site, "You are unsubscribed", who + "<p>This address gets no more mail from "
                     "us.</p>")  # fmt: skip

    async def get_page(request: Request) -> Response:
        token = request.path_params["token"]
        sid = claims_or_400(token)
        if isinstance(sid, Response):
            return sid
        v = await db().run(lambda s: view(s, token, sid))
        return render(v)

    async def post_page(request: Request) -> Response:
        token = request.path_params["token"]
        sid = claims_or_400(token)
        if isinstance(sid, Response):
            return sid
        body = await _read_limited(request, MAX_FORM_BYTES)
        if body is None:
            return PlainTextResponse("request too large\n", status_code=413)
        intent = _intent(body, request.headers.get("content-type", ""))
        if intent is None:
            return PlainTextResponse(NOT_AN_UNSUBSCRIBE, status_code=400, headers=PRIVATE_HEADERS)
        one_click = intent == "one-click"
        resubscribe = intent == "resubscribe"
        now = config.clock()

        def change(store: Store) -> tuple[_View, str]:
            email = address_for(store, token, sid)
            if email is None:
                return _View("gone"), ""
            if resubscribe:
                done = store.audience.unsuppress(
                    email,
                    source="unsubscribe-page",
                    now=now,
                    only_reasons=("unsubscribed",),
                    only_sources=OUR_SOURCES,
                )
                return view(store, token, sid), "resubscribed" if done else "refused"
            store.audience.suppress(
                email,
                reason="unsubscribed",
                source="one-click" if one_click else "unsubscribe-page",
                now=now,
            )
            return view(store, token, sid), "unsubscribed"

        try:
            v, changed = await db().run(change)
        except NewsletterError as err:  # the store stayed locked: the mail client may retry
            log.error("unsubscribe not recorded: %s", err.format())
            return PlainTextResponse(
                "We could not record this right now; please try again in a minute.\n",
                status_code=503,
                headers={**PRIVATE_HEADERS, "Retry-After": "60"},
            )
        if one_click:
            message = "unsubscribed\n" if v.state != "gone" else "not on the list\n"
            return PlainTextResponse(message, headers=PRIVATE_HEADERS)
        return render(v, just_changed=changed)

    async def webhook(request: Request) -> Response:
        if config.verifier is None and not config.insecure_webhook:
            return PlainTextResponse(WEBHOOK_REFUSED, status_code=403)
        body = await _read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return PlainTextResponse("request too large\n", status_code=413)
        now = config.clock()
        try:
            if config.verifier is not None:
                config.verifier.verify(request.headers, body, now=now)
            events = parse_events(body)
        except WebhookRejected as err:
            log.warning("webhook rejected: %s", err.message)
            return PlainTextResponse(err.message + "\n", status_code=err.status)

        def apply(store: Store) -> dict[str, int]:
            sink = store.campaigns
            return process_events(events, store=store.audience, now=now, sink=sink).as_dict()

        try:
            result = await db().run(apply)
        except NewsletterError as err:  # e.g. the database is locked for too long: SendGrid retries
            log.error("webhook not processed: %s", err.format())
            return PlainTextResponse("try again later\n", status_code=503)
        return JSONResponse(result)

    async def healthz(request: Request) -> Response:
        try:
            await db().run(_healthy)
        except NewsletterError as err:
            log.error("health check failed: %s", err.format())
            return PlainTextResponse("store unavailable\n", status_code=503)
        return PlainTextResponse("ok\n")

    routes = [
        Route("/u/{token}", get_page, methods=["GET"]),
        Route("/u/{token}", post_page, methods=["POST"]),
        Route("/webhooks/sendgrid", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        *(config.signup.routes() if config.signup is not None else []),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _healthy(store: Store) -> None:
    """The store file is still there and whole (a running server keeps reading its cache and
    write-ahead log, so a truncated or deleted file would go unnoticed), and answers."""
    if isinstance(store.path, Path):  # a SQLite file (a PostgreSQL store is a URL)
        check_file(store.path)
    store.conn.execute("SELECT 1").fetchone()


def _form_fields(body: bytes, content_type: str) -> dict[str, list[str]]:
    """The fields of a urlencoded or multipart/form-data body (RFC 8058 allows both)."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    match = re.search(r'boundary="?([^";]+)"?', params)
    if not match:
        return {}
    fields: dict[str, list[str]] = {}
    for part in body.split(b"--" + match.group(1).encode("latin-1"))[1:]:
        head, sep, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if sep and name:
            text = value.removesuffix(b"\r\n").decode("utf-8", "replace")
            fields.setdefault(name.group(1).decode("utf-8", "replace"), []).append(text)
    return fields


def _intent(body: bytes, content_type: str) -> str | None:
    """``one-click`` (RFC 8058 body), ``unsubscribe`` / ``resubscribe`` (the page's form), or
    None for anything else: an unrelated POST must not unsubscribe anyone."""
    fields = _form_fields(body, content_type)
    if fields.get("List-Unsubscribe") == ["One-Click"]:
        return "one-click"
    action = fields.get("action")
    if action in (["unsubscribe"], ["resubscribe"]):
        return action[0]
    return None


async def _read_limited(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def run_server(app: Any, *, host: str, port: int, access_log: bool = False) -> None:
    """Serve until interrupted. The access log is off by default: URLs carry tokens."""
    guarded_server(app, host=host, port=port, access_log=access_log).run()


def guarded_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = False,
    limits: ServerLimits | None = None,
) -> Any:
    """A ``uvicorn.Server`` bounded against floods of connections (:mod:`newsletter.web.guard`)."""
    import uvicorn

    fitted = (limits or ServerLimits()).fitted(raise_open_files_limit())
    quiet_logs()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        http=guarded_protocol(fitted),
        limit_concurrency=fitted.limit_concurrency,
        timeout_keep_alive=int(fitted.timeout_keep_alive),
        backlog=fitted.backlog,
        h11_max_incomplete_event_size=fitted.max_head_bytes,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)
