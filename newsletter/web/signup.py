"""The subscribe form's endpoints on ``newsletter serve`` (double opt-in).

Routes:
    POST    /subscribe                  a sign-up, form-encoded (the plain HTML form: 303 to the
                                        thank-you page) or JSON (the fetch() variant: 200 JSON)
    OPTIONS /subscribe                  CORS preflight; only the site's own origin is allowed
    GET     /subscribe/thanks           "check your inbox"
    GET     /subscribe/confirm/TOKEN    a page with one button; a GET never confirms (mail
                                        scanners and link checkers follow links)
    POST    /subscribe/confirm/TOKEN    confirm

Every sign-up that passes the field checks gets the same answer, byte for byte, whether the
address is new, pending, subscribed or suppressed, so the form tells nobody who is on the list.
The only other answers are about the request itself: a field to fix (400), a foreign origin
(403), too many sign-ups (429), a body too large (413).

The rules live in :mod:`newsletter.signup`; this module reads requests and picks pages. The
store is opened once at startup and used from worker threads under a lock; confirmation emails
leave through :class:`~newsletter.signup.mail.ConfirmationWorker`, never in the request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Secrets, Settings
from newsletter.errors import NewsletterError
from newsletter.signup import (
    QUEUED,
    RATE_LIMITED,
    ExpiredLink,
    InvalidLink,
    Policy,
    SignupInvalid,
    check_link,
    clean_form,
    confirm,
    submit,
)
from newsletter.signup.mail import (
    ConfirmationEmail,
    ConfirmationWorker,
    Mailer,
    MailProcess,
    mail_process_main,
)
from newsletter.store import StorePool
from newsletter.store.db import is_url
from newsletter.templating import environment, render_template
from newsletter.transports.base import Sender, Transport
from newsletter.web.app import _Db, _read_limited

log = logging.getLogger("newsletter.web.signup")
MAX_BODY_BYTES = 16 * 1024
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the confirmation token is in the URL
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https:; "
    "form-action 'self'; frame-ancestors 'none'",
}
THANKS = (
    "Thanks! If this address can get our newsletter, an email with a confirmation link is on "
    "its way to it."
)
BUSY = "Too many sign-ups right now. Please try again in a few minutes."


@dataclass
class SignupConfig:
    """What the sign-up endpoints need; the composition root (``newsletter serve``) builds it."""

    store_path: Path | str  # a SQLite file or a postgresql:// URL
    secret: str = field(repr=False)
    settings: Settings
    policy: Policy
    # None: sign-ups are queued and another process (`newsletter subscribers send-confirmations`)
    # sends them
    transport: Transport | None
    clock: Callable[[], datetime]
    poll_seconds: float = 5.0
    # `newsletter serve`: send from a child process instead (``transport`` is then unused)
    mail_process: MailProcess | None = None


class SignupWeb:
    """The routes, and :meth:`running` for the app's lifespan (store, email, mail worker)."""

    def __init__(self, config: SignupConfig) -> None:
        self.config = config
        settings = config.settings
        self.env = environment(settings.path(settings.email.templates))
        self.site = {
            "name": settings.site.name,
            "url": settings.site.url,
            "logo_url": settings.site.logo_url,
            "language": settings.site.language,
        }
        self._db: _Db | None = None
        self._worker: ConfirmationWorker | None = None
        self._wake: Callable[[], None] = lambda: None
        self._thanks_json = json.dumps({"ok": True, "message": THANKS}).encode()

    # -- lifespan ------------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        cfg = self.config
        store = StorePool(cfg.store_path)
        self._db = _Db(store)
        if (cfg.mail_process is not None or cfg.transport is not None) and not is_url(
            cfg.store_path
        ):
            # The sender's connection runs the WAL checkpoints (an fsync that can wait behind
            # other writes to the disk, such as the outbox's files) instead of a sign-up's
            # commit, which would hold every other sign-up behind it meanwhile.
            with store.store() as opened:
                opened.conn.execute("PRAGMA wal_autocheckpoint=0")
        process = None
        if cfg.mail_process is not None:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            wake, stop = ctx.Event(), ctx.Event()
            process = ctx.Process(
                target=mail_process_main,
                args=(cfg.mail_process, wake, stop),
                name="newsletter-signup-mail",
                daemon=True,
            )
            process.start()
            wake.set()  # anything left queued by an earlier run
            warned: list[bool] = []

            def wake_process() -> None:
                wake.set()
                if process is not None and not process.is_alive() and not warned:
                    warned.append(True)
                    log.error(
                        "the confirmation mail process stopped (exit code %s); sign-ups are "
                        "queued in the store and go out once newsletter serve is restarted",
                        process.exitcode,
                    )

            self._wake = wake_process
        elif cfg.transport is not None:
            e = cfg.settings.email
            mailer = Mailer(
                transport=cfg.transport,
                email=ConfirmationEmail.render(cfg.settings),
                sender=Sender(e.from_email, e.from_name, e.reply_to),
                secret=cfg.secret,
                base_url=cfg.policy.base_url,
            )
            self._worker = ConfirmationWorker(
                cfg.store_path, mailer, now=cfg.clock, poll_seconds=cfg.poll_seconds
            )
            self._worker.start()
            self._worker.wake()  # anything left queued by an earlier run
            self._wake = self._worker.wake
        try:
            yield
        finally:
            if self._worker is not None:
                self._worker.stop()
            if process is not None:
                stop.set()
                wake.set()
                process.join(15)
                if process.is_alive():
                    process.terminate()
                    process.join(5)
                process.close()
                # drop the events now, so their semaphores are released before exit
                self._wake = lambda: None
                del wake, stop, process
            store.close()

    def db(self) -> _Db:
        assert self._db is not None, "SignupWeb.running() was not entered"
        return self._db

    def routes(self) -> list[BaseRoute]:
        if not self.config.policy.enabled:
            return []
        return [
            Route("/subscribe", self.subscribe, methods=["POST"]),
            Route("/subscribe", self.preflight, methods=["OPTIONS"]),
            Route("/subscribe/thanks", self.thanks, methods=["GET"]),
            Route("/subscribe/confirm/{token}", self.confirm_page, methods=["GET"]),
            Route("/subscribe/confirm/{token}", self.confirm_post, methods=["POST"]),
        ]

    # -- pages ---------------------------------------------------------------------------------

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = render_template(
            self.env,
            f"signup/{name}.html.j2",
            {
                "site": self.site,
                "theme": self.config.settings.theme,
                "days": self.config.policy.confirm_for.days,
                **context,
            },
        )
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)

    def error(self, heading: str, message: str, status: int) -> HTMLResponse:
        return self.page("error", status, heading=heading, message=message)

    # -- POST /subscribe -----------------------------------------------------------------------

    def _cors(self, origin: str | None) -> dict[str, str]:
        headers = {"Vary": "Origin", "Cache-Control": "no-store"}
        if origin and origin in self.config.policy.allowed_origins:
            headers["Access-Control-Allow-Origin"] = origin
        return headers

    async def preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if not origin or origin not in self.config.policy.allowed_origins:
            return Response(status_code=403, headers={"Vary": "Origin"})
        return Response(
            status_code=204,
            headers={
                **self._cors(origin),
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Content-Type, Accept",
                "Access-Control-Max-Age": "600",
            },
        )

    async def subscribe(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = ctype == "application/json"
        cors = self._cors(origin)

        def fail(status: int, heading: str, message: str, **extra: str) -> Response:
            if as_json:
                body = {"ok": False, "message": message, **extra}
                return JSONResponse(body, status_code=status, headers=cors)
            return self.error(heading, message, status)

        if origin is not None and origin not in self.config.policy.allowed_origins:
            # another site's page (or a sandboxed frame, "null") posting the form
            return fail(403, "Not allowed", "This form can only be sent from our own site.")
        body = await _read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return fail(413, "Too large", "The form sent too much data.")
        try:
            values, tags = await _fields(request.headers, ctype, body)
            form = clean_form(values, tags, self.config.policy, referer=_referer(request))
        except SignupInvalid as err:
            message = _field_message(err)
            return fail(400, "Please check the form", message, field=err.field)
        client = request.client.host if request.client else ""
        cfg = self.config
        now = cfg.clock()
        try:
            outcome = await self.db().run(
                lambda s: submit(
                    s, form, client_address=client, secret=cfg.secret, policy=cfg.policy, now=now
                )
            )
        except NewsletterError as err:
            log.error("sign-up not recorded: %s", err.format())
            return fail(503, "Please try again", "We could not record this right now; please "
                        "try again in a minute.")  # fmt: skip
        if outcome == RATE_LIMITED:
            response = fail(429, "Please try again later", BUSY)
            response.headers["Retry-After"] = "60"
            return response
        if outcome == QUEUED:
            self._wake()
        # the same answer for every other outcome (queued, throttled, already, refused, bot)
        if as_json:
            return Response(self._thanks_json, media_type="application/json", headers=cors)
        target = cfg.policy.thank_you_url or "/subscribe/thanks"
        return RedirectResponse(target, status_code=303, headers=cors)

    async def thanks(self, request: Request) -> Response:
        return self.page("thanks")

    # -- confirmation --------------------------------------------------------------------------

    def _link_error(self, err: NewsletterError) -> Response:
        if isinstance(err, ExpiredLink):
            return self.error(
                "This link has expired",
                f"Confirmation links work for {self.config.policy.confirm_for.days} days. "
                "Please sign up again with the form on our site, and we will send a new one.",
                400,
            )
        return self.error(
            "This link is not valid",
            "It may have been cut short, or it is no longer in use. Please copy the whole link "
            "from the email, or sign up again with the form on our site.",
            400,
        )

    async def confirm_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        cfg = self.config
        now = cfg.clock()
        try:
            target = await self.db().run(lambda s: check_link(s, token, secret=cfg.secret, now=now))
        except (ExpiredLink, InvalidLink) as err:
            return self._link_error(err)
        if target.confirmed:
            return self.page("confirmed", email=target.email)
        return self.page("confirm", email=target.email)

    async def confirm_post(self, request: Request) -> Response:
        token = request.path_params["token"]
        cfg = self.config
        now = cfg.clock()
        client = request.client.host if request.client else ""
        try:
            target = await self.db().run(
                lambda s: confirm(s, token, secret=cfg.secret, client_address=client, now=now)
            )
        except (ExpiredLink, InvalidLink) as err:
            return self._link_error(err)
        except NewsletterError as err:
            log.error("confirmation not recorded: %s", err.format())
            return self.error(
                "Please try again", "We could not record this right now; please try again.", 503
            )
        if cfg.policy.confirmed_url:
            return RedirectResponse(cfg.policy.confirmed_url, status_code=303)
        return self.page("confirmed", email=target.email)


def _field_message(err: SignupInvalid) -> str:
    label = {"email": "Email", "first_name": "First name", "last_name": "Last name"}
    return f"{label.get(err.field, err.field.capitalize())} {err.message}."


def _referer(request: Request) -> str:
    return request.headers.get("referer", "")


async def _fields(headers: Headers, ctype: str, body: bytes) -> tuple[Mapping[str, str], list[str]]:
    """The text fields of a JSON, urlencoded or multipart body, and its ``tags`` (a list)."""
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise SignupInvalid("is not valid JSON", field="body") from err
        if not isinstance(data, dict):
            raise SignupInvalid("must be a JSON object", field="body")
        tags = data.pop("tags", [])
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise SignupInvalid("must be a list of strings", field="tags")
        values = {k: v for k, v in data.items() if isinstance(v, str)}
        return values, tags

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        if ctype == "multipart/form-data":
            form = await MultiPartParser(
                headers, stream(), max_files=0, max_fields=50, max_part_size=MAX_BODY_BYTES
            ).parse()
        elif ctype in ("application/x-www-form-urlencoded", ""):
            form = await FormParser(headers, stream(), max_fields=50).parse()
        else:
            raise SignupInvalid(
                "send the form as application/x-www-form-urlencoded, multipart/form-data or "
                "application/json",
                field="content-type",
            )
    except MultiPartException as err:
        raise SignupInvalid(f"cannot be read ({err.message})", field="body") from err
    values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    tags = [v for v in form.getlist("tags") if isinstance(v, str)]
    for part in (v for _, v in form.multi_items() if not isinstance(v, str)):
        await part.close()
    return values, tags


def signup_for_serve(
    settings: Settings, secrets: Secrets, secret: str, *, log: Callable[[str], None]
) -> SignupWeb | None:
    """The sign-up part of ``newsletter serve`` (None when ``signup.enabled`` is false):
    confirmation emails leave from a child process (see :class:`MailProcess`)."""
    from newsletter.signup.ops import mail_transport

    policy = Policy.from_settings(settings)
    if not policy.enabled:
        return None
    checked = mail_transport(settings, secrets, log=log)  # refuses unsafe settings now
    checked.close()
    ConfirmationEmail.render(settings)  # a template error stops serve here, with template:line
    return SignupWeb(
        SignupConfig(
            store_path=settings.store_target,
            secret=secret,
            settings=settings,
            policy=policy,
            transport=None,
            clock=lambda: datetime.now(UTC),
            mail_process=MailProcess(settings, secret, checked.name),
        )
    )
