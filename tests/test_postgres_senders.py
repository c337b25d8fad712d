"""Several senders, one campaign, on a real PostgreSQL store and the recording fake SendGrid:
100,000 recipients, each sent exactly once, whether the senders are `send --workers 3` or three
processes started apart, one of them killed with kill -9 mid-way."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

from send_cli_helpers import SEND, command, env, make_site, start

from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread
from newsletter.store import open_store

PEOPLE = 100_000
SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "pg-senders-secret-0123456789abcdef"}


def audience(tmp_path: Path, url: str) -> Path:
    """The example site, and 100,000 subscribers in the PostgreSQL store."""
    site = make_site(tmp_path)
    with open_store(url) as store:
        store.conn.execute(
            "INSERT INTO subscribers(email, email_key, first_name, created_at, updated_at)"
            " SELECT 'p' || g || '@example.net', 'p' || g || '@example.net', 'P' || g,"
            " '2026-10-01', '2026-10-01' FROM generate_series(1, ?) AS g",
            (PEOPLE,),
        )
    return site


def sent(fake: Path) -> Counter[str]:
    conn = sqlite3.connect(fake, timeout=30)
    try:
        return Counter(r[0] for r in conn.execute("SELECT recipient_id FROM messages"))
    finally:
        conn.close()


def ledger(url: str) -> dict[str, str]:
    with open_store(url) as store:
        rows = store.conn.execute("SELECT CAST(recipient_id AS TEXT), state FROM campaign_ledger")
        return {r[0]: r[1] for r in rows}


def test_three_worker_processes_send_each_recipient_once(tmp_path: Path, pg_url: str) -> None:
    site = audience(tmp_path, pg_url)
    fake = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(latency=0.02), fake) as url:
        proc = subprocess.run(
            command(*SEND, "--transport", "sendgrid", "--workers", "3"),
            cwd=site,
            env=env(SENDGRID_API_URL=url, NEWSLETTER_DATABASE_URL=pg_url, **SG),
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = sent(fake)
    assert len(got) == PEOPLE and max(got.values()) == 1  # 0 missing, 0 duplicates
    assert set(got) == set(ledger(pg_url)) and set(ledger(pg_url).values()) == {"accepted"}
    with open_store(pg_url) as store:
        claimers = store.conn.execute(
            "SELECT claimed_by, count(*) FROM campaign_batches GROUP BY claimed_by"
        ).fetchall()
        assert len(claimers) == 3 and all(n > 0 for _, n in claimers), claimers
        assert store.conn.execute("SELECT count(*) FROM campaign_leases").fetchone()[0] == 0
        assert store.conn.execute("SELECT state FROM campaigns").fetchone()[0] == "done"


def _wait(predicate: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_sender_killed_mid_way_leaves_the_rest_to_the_others(tmp_path: Path, pg_url: str) -> None:
    site = audience(tmp_path, pg_url)
    fake = tmp_path / "fake.db"

    def requests() -> int:
        try:
            conn = sqlite3.connect(fake, timeout=30)
            try:
                return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return 0

    def state() -> str:
        with open_store(pg_url) as store:
            row = store.conn.execute("SELECT state FROM campaigns").fetchone()
            return "" if row is None else str(row[0])

    with serve_in_thread(FaultPlan(latency=0.1), fake) as url:
        e = {"SENDGRID_API_URL": url, "NEWSLETTER_DATABASE_URL": pg_url, **SG}

        def sender(*args: str) -> subprocess.Popen[str]:
            return start(site, *args, "--concurrency", "2", **e)

        first = sender(*SEND, "--transport", "sendgrid")
        _wait(lambda: state() == "sending")
        with open_store(pg_url) as store:
            (cid,) = store.conn.execute("SELECT id FROM campaigns").fetchone()
        # two more senders, as if on other hosts: they join the campaign being sent
        others = [sender("resume", cid), sender("resume", cid)]
        _wait(lambda: requests() >= 30)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        outs = [p.communicate(timeout=300) for p in others]
    for p, (_, err) in zip(others, outs, strict=True):
        assert p.returncode in (0, 6), err[-3000:]  # 6: done, with unknown recipients
    assert 30 <= requests() <= PEOPLE // 1000  # one request per batch: none sent twice

    got = sent(fake)
    states = ledger(pg_url)
    assert max(got.values()) == 1  # 0 duplicates
    assert set(states.values()) <= {"accepted", "unknown"}  # nothing left pending
    missing = set(states) - set(got)
    assert all(states[r] == "unknown" for r in missing)  # only the killed one's in-flight batch
    assert len(missing) <= 2 * 1000
    assert all(states[r] == "accepted" for r in got if states[r] != "unknown")
    assert state() == "done"
