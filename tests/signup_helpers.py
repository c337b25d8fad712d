"""Helpers for the sign-up tests: a site folder, `newsletter serve`'s app on a real uvicorn on
127.0.0.1 (the port known before the settings are written, so links in emails point at it), and
reading confirmation emails back from the outbox."""

from __future__ import annotations

import email
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from audience_helpers import free_socket, run_uvicorn

from newsletter.config import Settings, load_settings
from newsletter.signup import Policy
from newsletter.signup.mail import CAMPAIGN
from newsletter.transports.outbox import OutboxTransport
from newsletter.web.app import WebConfig, create_app
from newsletter.web.signup import SignupConfig, SignupWeb

SECRET = "signup-test-secret-0123456789abcdef"
LINK = re.compile(r"https?://[^\s\"'<>]+/subscribe/confirm/[A-Za-z0-9_-]+")

TOML = """\
[site]
name = "Harbour Lights Meetup"
url = "{site_url}"

[email]
from_email = "news@harbour-lights.example.org"
from_name = "Harbour Lights"
postal_address = "Harbour Lights Meetup, 4 Quay Street, Port Alden"

[unsubscribe]
base_url = "{base_url}"

[signup]
tags = ["meetups", "workshops"]
{signup}
[store]
path = "store.db"
{extra}"""


class Clock:
    """A clock a test can move."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def write_site(
    root: Path, *, base_url: str, site_url: str, signup: str = "", extra: str = ""
) -> Settings:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "newsletter.toml"
    text = TOML.format(base_url=base_url, site_url=site_url, signup=signup, extra=extra)
    config.write_text(text, encoding="utf-8")
    return load_settings(config)


@dataclass
class Served:
    url: str
    settings: Settings
    clock: Clock

    @property
    def db(self) -> Path:
        return self.settings.db_path

    @property
    def outbox(self) -> Path:
        return self.settings.path(self.settings.send.outbox_dir) / CAMPAIGN


@contextmanager
def serve_signup(
    root: Path,
    *,
    site_url: str = "https://harbour-lights.example.org",
    signup: str = "",
    extra: str = "",
) -> Iterator[Served]:
    """`newsletter serve`'s app (unsubscribe, webhook and sign-up) for a fresh site in ``root``,
    confirmation emails written to its outbox."""
    sock, port = free_socket()
    url = f"http://127.0.0.1:{port}"
    settings = write_site(root, base_url=url, site_url=site_url, signup=signup, extra=extra)
    clock = Clock()
    web = SignupWeb(
        SignupConfig(
            store_path=settings.db_path,
            secret=SECRET,
            settings=settings,
            policy=Policy.from_settings(settings),
            transport=OutboxTransport(settings.path(settings.send.outbox_dir), now=clock),
            clock=clock,
            poll_seconds=0.2,
        )
    )
    app = create_app(
        WebConfig(
            store_path=settings.db_path,
            secret=SECRET,
            site_name=settings.site.name,
            clock=clock,
            signup=web,
        )
    )
    with run_uvicorn(app, sock):
        yield Served(url, settings, clock)


def messages(outbox: Path) -> list[EmailMessage]:
    """The complete messages in an outbox folder. The outbox writes each ``.eml`` and then its
    ``html/`` copy, so a message whose copy is not there yet may still be half written."""
    if not outbox.is_dir():
        return []
    out = []
    for path in sorted(outbox.glob("*.eml")):
        if not (outbox / "html" / f"{path.stem}.html").exists():
            continue
        msg = email.message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def link_in(msg: EmailMessage) -> str:
    found = LINK.findall(text_of(msg))
    assert found, text_of(msg)
    assert LINK.findall(html_of(msg))[0] == found[0]
    return found[0]
