"""Shared builders for the dispatch tests: a real store in a tmp dir, an issue, a dispatcher."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from newsletter.campaign.dispatcher import (
    Dispatcher,
    Envelope,
    Options,
    Personalizer,
    prepare,
)
from newsletter.rendered import RenderedIssue
from newsletter.store import Store, open_store
from newsletter.transports.base import Sender, Transport
from newsletter.transports.pacing import Backoff, Pacer

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

ISSUE = RenderedIssue(
    subject="News for %%FIRST_NAME_TEXT%%",
    preheader="",
    html='<p>Hi %%FIRST_NAME%%</p><a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a>',
    text="Hi %%FIRST_NAME_TEXT%%\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n",
    layout="digest",
    post_paths=("content/a.md",),
    slug="2026-11",
    newest_post_date="2026-11-20T10:00:00+00:00",
)
SENDER = Sender(email="news@example.org", name="Example News")


def people(n: int, start: int = 0) -> list[tuple[str, str, str]]:
    return [(str(i), f"user{i}@example.net", f"Name{i}") for i in range(start, start + n)]


CID = "2026-11-0123456789"


def fresh_store(where: Path | str) -> Store:
    """A new store: in the folder ``where``, at the file ``where`` (``*.db``), or at a
    ``postgresql://`` URL (the ``store_target`` fixture gives both backends)."""
    if isinstance(where, str) or where.suffix == ".db":
        return open_store(where)
    return open_store(where / "newsletter.db")


def prepared(store: Store, rows: Iterable[tuple[str, str, str]], *, batch_size: int = 1000) -> str:
    cid = CID
    prepare(
        store.campaigns,
        cid,
        Envelope(ISSUE, SENDER),
        rows,
        segment="",
        transport="test",
        now=NOW,
        batch_size=batch_size,
    )
    return cid


class FakeClock:
    """A monotonic clock that only moves when the dispatcher sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def dispatcher(
    store: Store,
    transport: Transport,
    cid: str,
    *,
    clock: FakeClock | None = None,
    options: Options | None = None,
    pacer: Pacer | None = None,
    suppressed: object = None,
) -> Dispatcher:
    clock = clock or FakeClock()
    env = Envelope.from_json(store.campaigns.envelope(cid))
    return Dispatcher(
        store.campaigns,
        transport,
        env,
        Personalizer(
            cid,
            lambda rid, email: f"https://example.org/u/{rid}",
            lambda url: {
                "List-Unsubscribe": f"<{url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        ),
        options=options or Options(),
        pacer=pacer or Pacer(clock=clock, sleep=clock.sleep),
        backoff=Backoff(base=0.5, rng=random.Random(1)),
        now=lambda: NOW,
        monotonic=clock,
        sleep=clock.sleep,
        suppressed=suppressed,  # type: ignore[arg-type]
    )
