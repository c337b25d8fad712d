"""``newsletter preview``: the email in a browser, re-rendered whenever a source file changes.

A watcher thread (watchfiles) bumps a version number when a post, a template or the config
file changes; the page polls ``/api/version`` twice a second and reloads the iframe and its tabs
when the number moves. A render error is kept and shown on the page; the server keeps running.
"""

from __future__ import annotations

import os
import threading
import webbrowser
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.lint import lint_issue
from newsletter.mime import email_for
from newsletter.rendered import RenderedIssue
from newsletter.templating import default_templates_dir, forget_templates

ASSETS = Path(__file__).resolve().parent / "preview_assets"
Build = Callable[[str | None], tuple[RenderedIssue, str, str, dict[str, str]]]


@dataclass
class Rendered:
    """One render of the issue for one "render as" choice, or the error that stopped it."""

    error: str = ""
    html: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreviewState:
    """What the preview serves. ``build`` renders (issue, to, to_name, values) for an address."""

    build: Build
    settings: Callable[[], Settings]
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    version: int = 0
    _cache: dict[tuple[int, str], Rendered] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def bump(self) -> None:
        with self._lock:
            self.version += 1
            self._cache.clear()
            forget_templates()

    def render(self, as_email: str | None) -> Rendered:
        key = (self.version, as_email or "")
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            result = self._render(as_email)
            self._cache[key] = result
            return result

    def _render(self, as_email: str | None) -> Rendered:
        try:
            issue, to, to_name, values = self.build(as_email)
            settings = self.settings()
            findings = lint_issue(issue, settings, longest=None)
        except NewsletterError as err:
            return Rendered(error=err.format(), data={"error": err.format()})
        one = email_for(
            issue,
            settings,
            to=to,
            to_name=to_name,
            values=values,
            now=self.now(),
            message_id="<preview@localhost>",
        )
        subject, html, text, message = one.subject, one.html, one.text, one.message
        headers = [[k, str(v)] for k, v in message.items()]
        data = {
            "error": "",
            "subject": subject,
            "preheader": issue.preheader,
            "layout": issue.layout,
            "text": text,
            "source": html,
            "headers": headers,
            "html_bytes": len(html.encode("utf-8")),
            "findings": [f.__dict__ for f in findings],
            "warnings": list(issue.warnings),
            "posts": list(issue.post_paths),
        }
        return Rendered(html=html, data=data)

    def subscribers(self, limit: int = 200) -> list[str]:
        """Addresses for the "render as" choice (empty when there is no store yet)."""
        try:
            settings = self.settings()
        except NewsletterError:
            return []
        if not settings.store_exists:
            return []
        from newsletter.store import open_store

        emails: list[str] = []
        with open_store(settings.store_target) as store:
            for sub in store.audience.iter_subscribers():
                emails.append(sub.email)
                if len(emails) >= limit:
                    break
        return emails


def watch_paths(settings: Settings) -> list[Path]:
    """Posts folders, the template folders and the config file: whatever exists of them."""
    paths = [*settings.content_dirs, settings.path(settings.email.templates)]
    paths.append(default_templates_dir())
    if settings.config_path is not None:
        paths.append(settings.config_path)
    seen: list[Path] = []
    for p in paths:
        p = p.resolve()
        if p.exists() and p not in seen:
            seen.append(p)
    return seen


def start_watcher(
    state: PreviewState, paths: Iterable[Path], stop: threading.Event
) -> threading.Thread:
    """Bump ``state`` on every change under ``paths`` until ``stop`` is set.

    A file is watched through its folder: editors that save by writing a new file and renaming
    it over the old one (``sed -i``, Emacs, "safe write") would end a watch on the file itself.
    """
    import watchfiles

    folders = [p for p in paths if p.is_dir()]
    files = {str(p) for p in paths if not p.is_dir()}
    targets = sorted({str(p) for p in folders} | {str(Path(f).parent) for f in files})
    prefixes = tuple(str(p) + os.sep for p in folders)

    def relevant(_change: watchfiles.Change, path: str) -> bool:
        return path in files or path.startswith(prefixes) or path in targets

    def loop() -> None:
        for _changes in watchfiles.watch(
            *targets,
            watch_filter=relevant,
            stop_event=stop,
            debounce=150,
            step=50,
            rust_timeout=500,
        ):
            state.bump()

    thread = threading.Thread(target=loop, name="preview-watcher", daemon=True)
    thread.start()
    return thread


_ERROR_PAGE = (
    "<!doctype html><meta charset=utf-8><body style='font:15px system-ui;padding:24px;"
    "color:#a40e26'><h2>The email could not be rendered</h2><pre style='white-space:pre-wrap'>"
    "{}</pre></body>"
)


def make_app(state: PreviewState) -> Starlette:
    import html as htmlmod

    def as_param(request: Request) -> str | None:
        return request.query_params.get("as") or None

    async def index(request: Request) -> Response:
        page = (ASSETS / "preview.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    async def email(request: Request) -> Response:
        rendered = state.render(as_param(request))
        if rendered.error:
            return HTMLResponse(_ERROR_PAGE.format(htmlmod.escape(rendered.error)))
        return HTMLResponse(rendered.html, headers={"Cache-Control": "no-store"})

    async def api_state(request: Request) -> Response:
        rendered = state.render(as_param(request))
        return JSONResponse({"version": state.version, **rendered.data})

    async def api_version(request: Request) -> Response:
        return JSONResponse({"version": state.version})

    async def api_subscribers(request: Request) -> Response:
        return JSONResponse(state.subscribers())

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        path = ASSETS / name
        if name not in ("preview.js", "preview.css") or not path.is_file():
            return Response("not found", status_code=404)
        media = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(path.read_text(encoding="utf-8"), media_type=media)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/email.html", email),
            Route("/api/state", api_state),
            Route("/api/version", api_version),
            Route("/api/subscribers", api_subscribers),
            Route("/assets/{name}", asset),
        ],
        # the preview lists subscribers: answer only to names of this machine, so a web page
        # cannot reach it through DNS rebinding
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS)],
    )


LOCAL_HOSTS = ["127.0.0.1", "localhost"]


def serve(state: PreviewState, *, port: int, open_browser: bool = False) -> None:
    """Run the preview on 127.0.0.1:``port`` until interrupted."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))  # fails here, with OSError, if the port is taken
    except OSError:
        sock.close()
        raise
    port = sock.getsockname()[1]
    stop = threading.Event()
    start_watcher(state, watch_paths(state.settings()), stop)
    config = uvicorn.Config(make_app(state), log_level="warning")
    server = uvicorn.Server(config)
    url = f"http://127.0.0.1:{port}/"
    print(f"preview: {url} (Ctrl+C to stop)", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        sock.close()
