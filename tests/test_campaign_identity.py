"""A campaign is the operator's intent (issue #9): ids, the rules around them, and old stores."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from send_cli_helpers import make_site, query, run

from newsletter import CampaignUnfinished, ConfigError, IssueQuery, Newsletter, SendOptions
from newsletter.config import Secrets, load_settings
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 1, 9, 0, tzinfo=LA)
OUTBOX = SendOptions(transport="outbox")


def _nl(site: Path) -> Newsletter:
    return Newsletter(load_settings(site / "newsletter.toml"), Secrets())


def test_the_id_follows_the_intent_not_the_bytes(tmp_path: Path) -> None:
    site = make_site(tmp_path)  # the example list: some are tagged 'speaker'
    nl = _nl(site)
    first = nl.send(IssueQuery(month="2026-10"), OUTBOX, now=NOW, progress=None)
    assert first.outcome == "sent" and first.campaign_id.startswith("2026-10-")
    post = site / "content" / "2026-10-21-talk-videos-online.md"
    post.write_text(post.read_text(encoding="utf-8").replace("forty-two", "forty-three"))
    again = nl.send(IssueQuery(month="2026-10"), OUTBOX, now=NOW)
    assert (again.outcome, again.campaign_id) == ("already_sent", first.campaign_id)
    assert again.changed == ["talk-videos-online"]
    assert "The October 2026 issue" in again.message and "--new-campaign" in again.message
    # another audience is another campaign (tags compare without case); a dry run names the
    # id the real send would use
    speakers = nl.send(
        IssueQuery(month="2026-10", segment=("Speaker",)),
        SendOptions(transport="outbox", dry_run=True),
        now=NOW,
    )
    assert speakers.outcome == "dry_run" and speakers.campaign_id != first.campaign_id
    shouting = nl.send(
        IssueQuery(month="2026-10", segment=("SPEAKER",)),
        SendOptions(transport="outbox", dry_run=True),
        now=NOW,
    )
    assert shouting.campaign_id == speakers.campaign_id
    # the same posts to the same people in another layout would mail them twice: refused
    with pytest.raises(CampaignUnfinished) as err:
        nl.send(IssueQuery(month="2026-10", layout="post"), OUTBOX, now=NOW)
    assert first.campaign_id in str(err.value) and "--new-campaign" in str(err.value)
    fresh = nl.send(
        IssueQuery(month="2026-10"), SendOptions(transport="outbox", new_campaign=True), now=NOW
    )
    assert fresh.outcome == "sent" and fresh.campaign_id != first.campaign_id


def test_send_needs_a_selection_and_dry_run_fails_like_the_real_send(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=3)
    nl = _nl(site)
    with pytest.raises(ConfigError) as err:
        nl.send(IssueQuery(), OUTBOX, now=NOW)
    assert "--month" in str(err.value) and "--since last-issue" in str(err.value)
    assert "--post" in str(err.value)
    real = run(site, "send", "--month", "2026-10", "--segment", "nosuchtag", "--yes", check=False)
    dry = run(
        site, "send", "--month", "2026-10", "--segment", "nosuchtag", "--dry-run", check=False
    )
    assert real.returncode == dry.returncode == 2
    assert real.stderr.splitlines()[-1] == dry.stderr.splitlines()[-1]
    assert "no subscribers with tag nosuchtag" in real.stderr
    bad = run(site, "send", "--month", "2026-10", "--concurrency", "0", check=False)
    assert bad.returncode == 2


def test_a_campaign_interrupted_before_the_upgrade_can_still_be_resumed(tmp_path: Path) -> None:
    """Pause a send, turn its store back into the previous schema, then resume with this one."""
    site = make_site(tmp_path, subscribers=40, batch_size=10)
    fake_db = tmp_path / "fake.db"
    keys = {"SENDGRID_API_KEY": "SG.x", "NEWSLETTER_SECRET": "upgrade-secret-0123456789abcdefghij"}
    flags = ["--yes", "--no-progress", "--transport", "sendgrid", "--retry-base", "0"]
    toml = site / "newsletter.toml"
    toml.write_text(
        toml.read_text().replace("max_consecutive_failures = 50", "max_consecutive_failures = 1")
    )
    with serve_in_thread(FaultPlan(script=["ok", "ok", "500"]), fake_db) as url:
        paused = run(
            site,
            "send",
            "--month",
            "2026-10",
            "--now",
            "2026-11-01T09:00",
            *flags,
            "--concurrency",
            "1",
            check=False,
            SENDGRID_API_URL=url,
            **keys,
        )
        assert paused.returncode == 5, paused.stderr
        db = site / "newsletter.db"
        (cid,) = query(db, "SELECT id FROM campaigns")[0]
        conn = sqlite3.connect(db)
        conn.executescript(
            """
            DROP TABLE campaign_posts;
            ALTER TABLE campaigns DROP COLUMN kind;
            ALTER TABLE campaigns DROP COLUMN window_start;
            ALTER TABLE campaigns DROP COLUMN window_end;
            ALTER TABLE campaigns DROP COLUMN rehearsal;
            DELETE FROM schema_migrations WHERE name = 'campaigns.0003_identity_and_posts';
            """
        )
        conn.close()
        run(site, "resume", cid, "--no-progress", SENDGRID_API_URL=url, **keys)
        kinds = query(db, "SELECT kind, window_end FROM campaigns")
        assert kinds == [("digest", "")]
        carried = query(db, "SELECT slug, path FROM campaign_posts")
        assert len(carried) == 2 and {s for s, _ in carried} == {""}  # paths only, from JSON
        # the next --since last-issue starts just after its newest post
        listing = run(
            site,
            "posts",
            "--since",
            "last-issue",
            "--now",
            "2026-12-01T09:00",
            SENDGRID_API_URL=url,
            **keys,
        )
        assert f"since the last issue {cid}" in listing.stdout
    sent = Counter(e for (e,) in query(fake_db, "SELECT email FROM messages"))
    assert len(sent) == 40 and set(sent.values()) == {1}


def test_the_archive_follows_sends_not_renders(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=3)
    archive = site / "archive"
    run(site, "render", "--month", "2026-09", "--now", "2026-10-01T09:00", "--out", "build")
    assert not archive.exists()  # a test render is not published
    out = run(site, "send", "--month", "2026-10", "--now", "2026-11-01T09:00", "--yes",
              "--no-progress", "--transport", "outbox")  # fmt: skip
    page = archive / "2026-10" / "index.html"
    assert f"archive page: {page}" in out.stdout.replace(str(site) + "/", str(site) + "/")
    html = page.read_text(encoding="utf-8")
    assert "All Talk Videos Are Online" in html and "@example.net" not in html  # no reader
    index = (archive / "index.html").read_text(encoding="utf-8")
    assert 'href="2026-10/"' in index and "2026-09" not in index
    feed = (archive / "feed.xml").read_text(encoding="utf-8")
    assert "<title>NorthBay PyConf — October 2026</title>" in feed
    assert "https://northbay-pyconf.example.org/newsletter/2026-10/" in feed
    # the archive is gone (a fresh deploy): rebuilt from the store, from the frozen content
    shutil.rmtree(archive)
    post = site / "content" / "2026-10-21-talk-videos-online.md"
    post.write_text(post.read_text(encoding="utf-8").replace("All Talk Videos", "Edited Videos"))
    built = run(site, "archive", "build")
    assert "1 issue page(s)" in built.stdout
    rebuilt = page.read_text(encoding="utf-8")
    assert "All Talk Videos Are Online" in rebuilt and "Edited Videos" not in rebuilt
    assert (archive / "feed.xml").exists()
