"""The unsubscribe endpoints, served by a real uvicorn on 127.0.0.1 and called with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from audience_helpers import serve

from newsletter.store import open_store
from newsletter.store.bulk import NewSubscriber
from newsletter.unsubscribe import make_token
from newsletter.web.app import WebConfig, create_app

SECRET = "web-test-secret-0123456789"
NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "n.db"
    with open_store(db) as store, store.audience.import_session() as s:
        s.apply(
            [
                NewSubscriber(2, "ann@x.org", "ann@x.org", "Ann"),
                NewSubscriber(3, "bob@x.org", "bob@x.org", "Bob"),
            ],
            now=NOW,
            dry_run=False,
        )
    app = create_app(
        WebConfig(store_path=db, secret=SECRET, site_name="Test News", clock=lambda: NOW)
    )
    with serve(app) as url:
        yield url, db


def token_for(db: Path, email: str) -> str:
    with open_store(db) as store:
        sub = store.audience.get_subscriber(email)
        assert sub is not None
        return make_token(SECRET, sub.id, sub.email)


def suppression(db: Path, email: str) -> tuple[str, str, str] | None:
    with open_store(db) as store:
        s = store.audience.get_suppression(email)
        return None if s is None else (s.reason, s.source, s.created_at)


def test_get_shows_a_button_and_never_unsubscribes(site: tuple[str, Path]) -> None:
    url, db = site
    token = token_for(db, "ann@x.org")
    for _ in range(3):  # scanners and prefetchers may follow the link many times
        r = httpx.get(f"{url}/u/{token}")
        assert r.status_code == 200
        assert '<form method="post">' in r.text and "Unsubscribe</button>" in r.text
        assert "ann@x.org" in r.text
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert httpx.head(f"{url}/u/{token}").status_code == 200
    assert suppression(db, "ann@x.org") is None


def test_one_click_post_unsubscribes_at_once_and_is_idempotent(site: tuple[str, Path]) -> None:
    url, db = site
    token = token_for(db, "ann@x.org")
    for _ in range(3):
        r = httpx.post(
            f"{url}/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert r.status_code == 200
        assert r.text == "unsubscribed\n"
    assert suppression(db, "ann@x.org") == ("unsubscribed", "one-click", NOW.isoformat())
    assert suppression(db, "bob@x.org") is None
    with open_store(db) as store:
        assert [r.email for r in store.audience.iter_recipients()] == ["bob@x.org"]
        assert len(store.audience.suppression_history("ann@x.org")) == 1


def test_one_click_as_multipart_form_also_works(site: tuple[str, Path]) -> None:
    url, db = site
    token = token_for(db, "bob@x.org")
    r = httpx.post(f"{url}/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert r.status_code == 200
    assert suppression(db, "bob@x.org") is not None


def test_page_button_then_resubscribe(site: tuple[str, Path]) -> None:
    url, db = site
    token = token_for(db, "bob@x.org")
    r = httpx.post(f"{url}/u/{token}", data={"action": "unsubscribe"})
    assert r.status_code == 200
    assert "You are unsubscribed" in r.text and "Resubscribe</button>" in r.text
    assert suppression(db, "bob@x.org") == ("unsubscribed", "unsubscribe-page", NOW.isoformat())
    r = httpx.get(f"{url}/u/{token}")
    assert "Resubscribe</button>" in r.text
    r = httpx.post(f"{url}/u/{token}", data={"action": "resubscribe"})
    assert r.status_code == 200 and "subscribed again" in r.text
    assert suppression(db, "bob@x.org") is None
    with open_store(db) as store:
        actions = [h[1:] for h in store.audience.suppression_history("bob@x.org")]
    assert actions == [
        ("suppress", "unsubscribed", "unsubscribe-page"),
        ("unsuppress", "unsubscribed", "unsubscribe-page"),
    ]


def test_resubscribe_does_not_undo_a_bounce(site: tuple[str, Path]) -> None:
    url, db = site
    with open_store(db) as store:
        store.audience.suppress("bob@x.org", reason="bounced", source="t", now=NOW)
    token = token_for(db, "bob@x.org")
    r = httpx.post(f"{url}/u/{token}", data={"action": "resubscribe"})
    assert r.status_code == 200 and "Resubscribe" not in r.text
    assert suppression(db, "bob@x.org") == ("bounced", "t", NOW.isoformat())


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_token_is_400_plain_and_changes_nothing(site: tuple[str, Path], method: str) -> None:
    url, db = site
    good = token_for(db, "ann@x.org")
    forged = make_token("another-secret", 1, "ann@x.org")
    for token in (good[:-2], good[:-1] + ("A" if good[-1] != "A" else "B"), forged, "x" * 30):
        r = httpx.request(method, f"{url}/u/{token}", content=b"List-Unsubscribe=One-Click")
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("text/plain")
        assert "not valid" in r.text
    assert suppression(db, "ann@x.org") is None


def test_token_for_a_changed_or_removed_address_changes_nothing(site: tuple[str, Path]) -> None:
    url, db = site
    token = token_for(db, "ann@x.org")
    with open_store(db) as store:
        sub = store.audience.get_subscriber("ann@x.org")
        assert sub is not None
        old_token_for_other_email = make_token(SECRET, sub.id, "someone-else@x.org")
        store.audience.remove_subscriber("bob@x.org", now=NOW)
    r = httpx.post(f"{url}/u/{old_token_for_other_email}", content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200 and r.text == "not on the list\n"
    assert suppression(db, "ann@x.org") is None
    assert httpx.get(f"{url}/u/{token}").status_code == 200


def reimport(db: Path, email: str) -> None:
    with open_store(db) as store, store.audience.import_session() as s:
        s.apply([NewSubscriber(9, email, email, "Again")], now=NOW, dry_run=False)


def one_click(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_old_link_still_unsubscribes_after_remove_and_reimport(site: tuple[str, Path]) -> None:
    url, db = site
    old = token_for(db, "ann@x.org")
    with open_store(db) as store:
        assert store.audience.remove_subscriber("ann@x.org", now=NOW)
    reimport(db, "ann@x.org")
    new = token_for(db, "ann@x.org")
    assert new != old  # a new id: the old link names an id that is gone
    page = httpx.get(f"{url}/u/{old}")
    assert page.status_code == 200
    assert "ann@x.org" in page.text and "Unsubscribe</button>" in page.text
    assert "not on" not in page.text and "will not get" not in page.text
    r = one_click(url, old)
    assert (r.status_code, r.text) == (200, "unsubscribed\n")
    assert suppression(db, "ann@x.org") == ("unsubscribed", "one-click", NOW.isoformat())
    with open_store(db) as store:
        assert store.audience.count_recipients() == 1  # bob only
    assert "You are unsubscribed" in httpx.get(f"{url}/u/{new}").text


def test_link_of_a_removed_address_tells_the_truth_and_can_block_it(
    site: tuple[str, Path],
) -> None:
    url, db = site
    old = token_for(db, "bob@x.org")
    with open_store(db) as store:
        store.audience.remove_subscriber("bob@x.org", now=NOW)
    page = httpx.get(f"{url}/u/{old}").text
    assert "not on our mailing list at the moment" in page and "Unsubscribe</button>" in page
    assert suppression(db, "bob@x.org") is None  # a GET changes nothing
    r = httpx.post(f"{url}/u/{old}", data={"action": "unsubscribe"})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    reimport(db, "bob@x.org")  # a suppressed address is never re-subscribed
    with open_store(db) as store:
        assert store.audience.get_subscriber("bob@x.org") is None


def test_link_naming_no_known_address_claims_nothing(site: tuple[str, Path]) -> None:
    url, db = site
    unknown = make_token(SECRET, 999, "zed@x.org")  # signed by us, but no such id was ever given
    page = httpx.get(f"{url}/u/{unknown}").text
    assert "cannot tell which address" in page and "will not get" not in page
    r = one_click(url, unknown)
    assert (r.status_code, r.text) == (200, "not on the list\n")
    assert suppression(db, "zed@x.org") is None


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"foo=bar", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=Maybe", "application/x-www-form-urlencoded"),
        (b"action=delete-everything", "application/x-www-form-urlencoded"),
        (b"foo=List-Unsubscribe&bar=One-Click", "application/x-www-form-urlencoded"),
        (b'{"List-Unsubscribe": "One-Click"}', "application/json"),
    ],
)
def test_unrelated_post_bodies_are_400_and_change_nothing(
    site: tuple[str, Path], body: bytes, content_type: str
) -> None:
    url, db = site
    token = token_for(db, "ann@x.org")
    r = httpx.post(f"{url}/u/{token}", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 400
    assert "not an unsubscribe" in r.text
    assert suppression(db, "ann@x.org") is None


def test_one_click_as_multipart_form_data_is_accepted(site: tuple[str, Path]) -> None:
    url, db = site
    token = token_for(db, "ann@x.org")
    r = httpx.post(f"{url}/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert r.request.headers["content-type"].startswith("multipart/form-data")
    assert (r.status_code, r.text) == (200, "unsubscribed\n")
    assert suppression(db, "ann@x.org") == ("unsubscribed", "one-click", NOW.isoformat())


@pytest.mark.parametrize("source", ["sendgrid-webhook", "sendgrid-sync"])
def test_resubscribe_does_not_lift_a_sendgrid_unsubscribe(
    site: tuple[str, Path], source: str
) -> None:
    url, db = site
    token = token_for(db, "ann@x.org")
    with open_store(db) as store:
        store.audience.suppress("ann@x.org", reason="unsubscribed", source=source, now=NOW)
    page = httpx.get(f"{url}/u/{token}").text
    assert "Resubscribe</button>" not in page and "SendGrid" in page
    r = httpx.post(f"{url}/u/{token}", data={"action": "resubscribe"})
    assert r.status_code == 200
    assert "still unsubscribed" in r.text and "Welcome back" not in r.text
    assert suppression(db, "ann@x.org") == ("unsubscribed", source, NOW.isoformat())


def test_resubscribe_lifts_an_unsubscribe_made_here(site: tuple[str, Path]) -> None:
    url, db = site
    token = token_for(db, "ann@x.org")
    one_click(url, token)
    page = httpx.get(f"{url}/u/{token}").text
    assert "Resubscribe</button>" in page
    r = httpx.post(f"{url}/u/{token}", data={"action": "resubscribe"})
    assert "Welcome back" in r.text
    assert suppression(db, "ann@x.org") is None


def test_healthz(site: tuple[str, Path]) -> None:
    url, _ = site
    r = httpx.get(f"{url}/healthz")
    assert (r.status_code, r.text) == (200, "ok\n")
