"""Operator journeys over months, against the recording fake SendGrid (issue #9).

Each test runs the real `newsletter` command as an operator would, month after month with
``--now``, and counts at the fake exactly what every subscriber received: digests, a blast in
between, edits after sends, a kill -9 and a SIGTERM mid-send, re-runs an hour later, and a
config someone forgot to fill in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from send_cli_helpers import make_site, query, run, start

from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "journey-secret-0123456789abcdef0123"}
FLAGS = ["--yes", "--no-progress", "--transport", "sendgrid"]


def site_on(
    store_target: Path | str, tmp_path: Path, people: int, *, batch_size: int
) -> tuple[Path, dict[str, str]]:
    """The example site with ``people`` subscribers, and the environment its commands run
    with: its SQLite file, or the PostgreSQL database ``store_target`` (imported into)."""
    site = make_site(tmp_path, subscribers=people, batch_size=batch_size)
    if isinstance(store_target, Path):
        return site, {}
    store = {"NEWSLETTER_DATABASE_URL": store_target}
    run(site, "subscribers", "import", "subs.csv", **store)
    return site, store


def received(fake_db: Path) -> Counter[tuple[str, str]]:
    """(campaign id, email) -> how many messages the fake accepted."""
    return Counter(query(fake_db, "SELECT campaign_id, email FROM messages"))


def per_campaign(fake_db: Path) -> dict[str, int]:
    return dict(Counter(c for c, _ in received(fake_db).elements()))


def campaign_of(out: str) -> str:
    """The id in the closing line ``campaign ID: done``."""
    line = [x for x in out.splitlines() if x.startswith("campaign ")][-1]
    return line.split()[1].rstrip(":")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_months_of_digests_a_blast_between_and_edits_after_sends(
    tmp_path: Path, store_target: Path | str
) -> None:
    people = 30
    site, store = site_on(store_target, tmp_path, people, batch_size=10)
    fake_db = tmp_path / "fake.db"
    videos = site / "content" / "2026-10-21-talk-videos-online.md"
    with serve_in_thread(FaultPlan(), fake_db) as url:

        def nl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return run(site, *args, check=check, SENDGRID_API_URL=url, **SG, **store)

        # September: the first digest
        sept = nl("send", "--month", "2026-09", "--now", "2026-10-01T09:00", *FLAGS)
        sept_id = campaign_of(sept.stdout)
        assert sept_id.startswith("2026-09-")
        assert per_campaign(fake_db) == {sept_id: people}

        # a blast of a post dated October 21, sent the next day
        blast_args = ["send", "--post", "talk-videos-online", "--now", "2026-10-22T10:00"]
        blast = nl(*blast_args, *FLAGS)
        blast_id = campaign_of(blast.stdout)
        assert per_campaign(fake_db) == {sept_id: people, blast_id: people}

        # one character of the sent post is fixed, and the same command runs again: nothing sent
        edit(videos, "fastest turnaround", "fastest turn-around")
        again = nl(*blast_args, *FLAGS)
        assert "was already sent" in again.stdout and "nothing sent" in again.stdout
        assert "talk-videos-online" in again.stdout and "--new-campaign" in again.stdout
        assert per_campaign(fake_db) == {sept_id: people, blast_id: people}

        # October by --since last-issue: starts where September's window ended, so the older
        # wrap-up post (never mailed) is in, and the blasted post is out
        listing = nl("posts", "--since", "last-issue", "--now", "2026-11-01T09:00")
        rows = {line.split("  ")[1].strip(): line for line in listing.stdout.splitlines()[1:-1]}
        assert "selected" in rows["2026 Conference Wrap-Up"]
        assert f"already sent in {blast_id}" in rows["All Talk Videos Are Online"]
        assert f"since the last issue {sept_id}" in listing.stdout.splitlines()[-1]

        # the dry run and the real send name the same campaign
        dry = nl("send", "--since", "last-issue", "--now", "2026-11-01T09:00", "--dry-run", *FLAGS)
        assert "nothing was sent" in dry.stdout
        october = nl("send", "--since", "last-issue", "--now", "2026-11-01T09:00", *FLAGS)
        oct_id = campaign_of(october.stdout)
        assert campaign_of(dry.stdout.replace("dry run of campaign", "campaign")) == oct_id
        assert per_campaign(fake_db) == {sept_id: people, blast_id: people, oct_id: people}
        posts = store_query(
            store_target, site, "SELECT slug FROM campaign_posts WHERE campaign_id = ?", oct_id
        )
        assert [s for (s,) in posts] == ["conference-wrap-up"]

        # cron runs again an hour later: nothing new, nothing sent, exit 0
        later = nl("send", "--since", "last-issue", "--now", "2026-11-01T10:00", *FLAGS)
        assert "nothing new since the last issue" in later.stdout

        # the October month by name overlaps what went out: refused, and why
        month = nl("send", "--month", "2026-10", "--now", "2026-11-01T11:00", *FLAGS, check=False)
        assert month.returncode == 2, month.stderr
        assert oct_id in month.stderr and "--since last-issue" in month.stderr

        # tags compare without case: --segment CORE is the 'core' tag (nobody here has it)
        seg = nl(
            "send",
            "--since",
            "last-issue",
            "--segment",
            "CORE",
            "--now",
            "2026-12-01T09:00",
            "--dry-run",
            *FLAGS,
            check=False,
        )
        assert seg.returncode == 2 and "no digest has been sent to this audience" in seg.stderr

        # November: what is new, to everyone, once
        nov = nl("send", "--since", "last-issue", "--now", "2026-12-01T09:00", *FLAGS)
        nov_id = campaign_of(nov.stdout)
    counts = received(fake_db)
    assert set(counts.values()) == {1}  # nobody got any campaign twice
    per_person = Counter(email for _, email in counts)
    assert set(per_person.values()) == {4} and len(per_person) == people
    assert per_campaign(fake_db) == {
        sept_id: people,
        blast_id: people,
        oct_id: people,
        nov_id: people,
    }
    nov_posts = store_query(
        store_target, site, "SELECT slug FROM campaign_posts WHERE campaign_id = ?", nov_id
    )
    assert [s for (s,) in nov_posts] == ["attendee-survey-results"]  # grants is a draft


def store_query(target: Path | str, site: Path, sql: str, *args: object) -> list[tuple]:
    """Rows from the site's store: its SQLite file, or the PostgreSQL database at ``target``."""
    if isinstance(target, Path):
        return query(site / "newsletter.db", sql, *args)
    from newsletter.store import open_store

    with open_store(target) as opened:
        return [tuple(r) for r in opened.conn.execute(sql, args).fetchall()]


def _start(site: Path, url: str, *args: str, **extra: str) -> subprocess.Popen[str]:
    return start(site, *args, SENDGRID_API_URL=url, **SG, **extra)


def _wait_requests(fake_db: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if query(fake_db, "SELECT count(*) FROM requests")[0][0] >= n:
                return
        except Exception:
            pass
        time.sleep(0.005)
    raise AssertionError(f"the fake never saw {n} requests")


def test_crashes_signals_and_edits_mid_send_never_mail_anyone_twice(
    tmp_path: Path, store_target: Path | str
) -> None:
    people = 600
    site, store = site_on(store_target, tmp_path, people, batch_size=20)
    fake_db = tmp_path / "fake.db"
    wrap_up = site / "content" / "2026-10-05-conference-wrap-up.md"

    def db_rows(sql: str, *args: object) -> list[tuple]:
        return store_query(store_target, site, sql, *args)

    slow = ["--concurrency", "1"]
    with serve_in_thread(FaultPlan(latency=0.03), fake_db) as url:

        def nl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return run(site, *args, check=check, SENDGRID_API_URL=url, **SG, **store)

        # a blast killed with -9 after a few requests; the post's title is edited; the same
        # command then finishes the *same* campaign with the content it started with
        blast = ["send", "--post", "conference-wrap-up", "--now", "2026-10-06T09:00", *FLAGS]
        proc = _start(site, url, *blast, *slow, **store)
        _wait_requests(fake_db, 6)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        edit(wrap_up, 'title: "2026 Conference Wrap-Up"', 'title: "Edited title"')
        resumed = nl(*blast, check=False)
        assert resumed.returncode in (0, 6), resumed.stderr  # 6: a batch in flight is unknown
        assert "with the content it started with" in resumed.stderr
        assert "edits made since are not in it (conference-wrap-up)" in resumed.stderr
        subjects = Counter(s for (s,) in query(fake_db, "SELECT subject FROM messages"))
        assert list(subjects) == ["2026 Conference Wrap-Up"]
        # reverting the edit changes nothing either
        edit(wrap_up, 'title: "Edited title"', 'title: "2026 Conference Wrap-Up"')
        again = nl(*blast, check=False)
        assert "was already sent" in again.stdout
        # still exit 6 while recipients are unknown: the re-run says so rather than "all done"
        assert again.returncode == (6 if "unknown" in again.stderr else 0), again.stderr
        blast_id = db_rows("SELECT id FROM campaigns")[0][0]
        sent = Counter(e for (e,) in query(fake_db, "SELECT email FROM messages"))
        assert max(sent.values()) == 1  # 0 duplicates
        unknown = {
            e for (e,) in db_rows("SELECT email FROM campaign_ledger WHERE state = 'unknown'")
        }
        assert set(sent) | unknown == {f"p{i}@example.net" for i in range(people)}
        assert not set(sent) & unknown or len(unknown) <= 20  # at most the one batch in flight

        # the September digest, stopped by SIGTERM (systemd stop): paused, nothing unknown
        sept = ["send", "--month", "2026-09", "--now", "2026-10-01T09:00", *FLAGS]
        before = len(query(fake_db, "SELECT 1 FROM requests"))
        proc = _start(site, url, *sept, *slow, **store)
        _wait_requests(fake_db, before + 5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 5, err
        assert "interrupted (SIGTERM)" in err and "newsletter resume" in err
        (sept_id,) = db_rows("SELECT id FROM campaigns WHERE kind = 'digest'")[0]
        states = Counter(
            s
            for (s,) in db_rows("SELECT state FROM campaign_ledger WHERE campaign_id = ?", sept_id)
        )
        assert set(states) == {"accepted", "pending"}, states  # 0 unknown

        # while September is unfinished, another digest to everyone is refused with the way on
        other = nl("send", "--month", "2026-08", "--now", "2026-10-01T09:30", *FLAGS, check=False)
        assert other.returncode == 2 and f"newsletter resume {sept_id}" in other.stderr
        nl("resume", sept_id, "--no-progress")

        # October by --since last-issue, killed with -9, re-run by cron an hour later: the same
        # campaign is finished (its window end moved with the clock; it is still that issue)
        october = ["send", "--since", "last-issue", *FLAGS]
        before = len(query(fake_db, "SELECT 1 FROM requests"))
        proc = _start(site, url, *october, "--now", "2026-11-01T09:00", *slow, **store)
        _wait_requests(fake_db, before + 4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        rerun = nl(*october, "--now", "2026-11-01T10:00", check=False)
        assert rerun.returncode in (0, 6), rerun.stderr
        assert "resuming campaign" in rerun.stderr
        digests = [c for (c,) in db_rows("SELECT id FROM campaigns WHERE kind = 'digest'")]
        assert len(digests) == 2  # September and one October, not two
    by_campaign = Counter(c for c, _ in received(fake_db).elements())
    assert set(by_campaign) == {blast_id, *digests}
    counts = received(fake_db)
    assert max(counts.values()) == 1  # nobody got any campaign twice
    ledger_unknown = Counter(
        c for (c,) in db_rows("SELECT campaign_id FROM campaign_ledger WHERE state = 'unknown'")
    )
    for cid in (blast_id, *digests):
        # everyone was either mailed once or is `unknown` (a batch in flight at a kill -9)
        assert by_campaign[cid] + ledger_unknown[cid] >= people - 20
        assert by_campaign[cid] <= people
    assert by_campaign[sept_id] == people  # SIGTERM + resume: everyone, exactly once


def test_a_forgotten_config_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=5)
    toml = site / "newsletter.toml"
    text = toml.read_text(encoding="utf-8")
    start = text.index("[email]")
    end = text.index("[unsubscribe]")
    toml.write_text(text[:start] + text[end:], encoding="utf-8")  # no [email] section at all
    # an address under .invalid never resolves: even a broken check could not reach anyone
    out = run(
        site,
        "send",
        "--month",
        "2026-10",
        "--now",
        "2026-11-01T09:00",
        *FLAGS,
        check=False,
        SENDGRID_API_URL="https://sendgrid.invalid",
        **SG,
    )
    assert out.returncode == 2, out.stderr
    assert "email.from_email: news@example.com is on a placeholder domain" in out.stderr
    assert "unsubscribe.base_url: http://127.0.0.1:8000 is not https" in out.stderr
    assert "Traceback" not in out.stderr
    assert query(site / "newsletter.db", "SELECT count(*) FROM campaigns") == [(0,)]
    weak = run(
        site,
        "send",
        "--month",
        "2026-10",
        "--now",
        "2026-11-01T09:00",
        *FLAGS,
        check=False,
        SENDGRID_API_URL="https://sendgrid.invalid",
        SENDGRID_API_KEY="SG.x",
        NEWSLETTER_SECRET="a",
    )
    assert (
        weak.returncode == 2
        and "NEWSLETTER_SECRET: NEWSLETTER_SECRET is only 1 bytes" in weak.stderr
    )
    # a value out of range in newsletter.toml names its line
    toml.write_text(
        toml.read_text(encoding="utf-8").replace("[send]\n", "[send]\nconcurrency = 0\n")
    )
    bad = run(site, "posts", check=False)
    line = toml.read_text(encoding="utf-8").splitlines().index("concurrency = 0") + 1
    assert bad.returncode == 2
    assert f"newsletter.toml:{line}: send.concurrency: 0 is out of range" in bad.stderr
