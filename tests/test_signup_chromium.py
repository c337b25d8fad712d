"""The sign-up form in real headless Chromium, on a page served from another local port.

The page is the output of `newsletter snippet`, served by a plain static file server (the
site); the form posts to `newsletter serve`'s app on a real uvicorn. Skipped only when no
Chromium is installed and NEWSLETTER_REQUIRE_CHROMIUM is unset (CI sets it).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from signup_helpers import link_in, messages, serve_signup, wait_for
from test_preview_chromium import browser  # noqa: F401 - the fixture (skips without chromium)

from newsletter.cli import main
from newsletter.store import open_store


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """The site's pages, served from ``folder`` on another 127.0.0.1 port."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def snippet(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), "snippet", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def page_with(form: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>News</title></head><body>"
        f"<h1>Harbour Lights news</h1>{form}</body></html>"
    )


def status(db: Path, email: str) -> str | None:
    with open_store(db) as store:
        sub = store.audience.get_subscriber(email)
        return None if sub is None else sub.status


def test_the_form_in_chromium_from_another_origin(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    pages = tmp_path / "pages"
    pages.mkdir()
    with static_site(pages) as site:
        signup = f'thank_you_url = "{site}/thanks.html"\n'
        with serve_signup(tmp_path / "site", site_url=site, signup=signup) as srv:
            config = srv.settings.config_path
            assert config is not None
            (pages / "index.html").write_text(page_with(snippet(config, "--tag", "meetups")))
            (pages / "fetch.html").write_text(page_with(snippet(config, "--fetch")))
            (pages / "thanks.html").write_text(page_with("<p id='thanks'>Nearly there!</p>"))

            page = browser.new_page()
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith("http://127.0.0.1:")
                    else route.abort()
                ),
            )
            # the plain form: no JavaScript involved
            page.goto(f"{site}/index.html")
            page.fill("input[name=email]", "Oskar@Example.net")
            page.fill("input[name=first_name]", "Oskar")
            page.click("button[type=submit]")
            page.wait_for_url(f"{site}/thanks.html")
            assert page.text_content("#thanks") == "Nearly there!"
            assert status(srv.db, "oskar@example.net") == "pending"

            assert wait_for(lambda: len(messages(srv.outbox)) == 1)
            link = link_in(messages(srv.outbox)[0])
            page.goto(link)  # what a reader's click (or a mail scanner) does: a GET
            assert page.text_content("h1") == "Confirm your subscription"
            assert status(srv.db, "oskar@example.net") == "pending"
            page.click("button[type=submit]")
            page.wait_for_selector("text=You are subscribed")
            assert status(srv.db, "oskar@example.net") == "confirmed"
            with open_store(srv.db) as store:
                sub = store.audience.get_subscriber("oskar@example.net")
                assert sub is not None and sub.tags == ("meetups",)
                assert [r[1] for r in store.audience.iter_recipient_rows()] == ["Oskar@example.net"]

            # the fetch() variant: a cross-origin JSON request, allowed by CORS for this site
            page.goto(f"{site}/fetch.html")
            page.fill("input[name=email]", "lena@example.net")
            page.click("button[type=submit]")
            page.wait_for_selector("text=Thanks! If this address can get our newsletter")
            assert page.url == f"{site}/fetch.html"  # never left the page
            assert status(srv.db, "lena@example.net") == "pending"
            with open_store(srv.db) as store:
                [consent] = store.signup.consents("lena@example.net")
            assert consent.page == f"{site}/fetch.html"
            page.close()


def test_another_site_cannot_use_the_form(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    with (
        static_site(mine) as site,
        static_site(theirs) as other,
        serve_signup(tmp_path / "site", site_url=site) as srv,
    ):
        config = srv.settings.config_path
        assert config is not None
        (theirs / "fetch.html").write_text(page_with(snippet(config, "--fetch")))
        page = browser.new_page()
        messages_seen: list[str] = []
        page.on("console", lambda m: messages_seen.append(m.text))
        page.goto(f"{other}/fetch.html")
        page.fill("input[name=email]", "victim@example.net")
        # the script falls back to posting the form, which the server refuses (403)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "Not allowed" in (page.text_content("h1") or "")
        assert status(srv.db, "victim@example.net") is None
        page.close()
