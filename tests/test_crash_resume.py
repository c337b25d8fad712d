"""kill -9 of a real `newsletter send` process at many points, then resume: nobody lost or doubled.

The recording fake SendGrid runs in this process; the sender is a subprocess we SIGKILL when
the fake has seen a given number of requests (plus a random few milliseconds, so kills land
before, during and after requests and ledger commits).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from send_cli_helpers import SEND, command, env, make_site, query, run, start

from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "crash-test-secret-0123456789abcdef"}
PEOPLE = 6000


def _requests(db: Path) -> int:
    try:
        return int(query(db, "SELECT count(*) FROM requests")[0][0])
    except Exception:
        return 0


def test_kill_9_at_many_points_then_resume(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=PEOPLE, batch_size=100)
    fake_db = tmp_path / "fake.db"
    rng = random.Random(20261126)
    kills: list[str] = []
    with serve_in_thread(FaultPlan(latency=0.03), fake_db) as url:
        e = env(SENDGRID_API_URL=url, **SG)
        args = command(*SEND, "--transport", "sendgrid", "--concurrency", "2")
        # the first kill lands at a random early moment (import, render, preparation, first
        # batch); each later one after 1-3 more requests reached the fake, plus a few random
        # milliseconds, so kills land before, during and after requests and ledger commits
        for attempt in range(13):
            proc = subprocess.Popen(
                args, cwd=site, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            start = time.monotonic()
            early = rng.uniform(0.3, 0.9) if attempt == 0 else None
            target = _requests(fake_db) + rng.randint(1, 3)
            while proc.poll() is None:
                if early is not None:
                    if time.monotonic() - start >= early:
                        break
                elif _requests(fake_db) >= target:
                    time.sleep(rng.uniform(0, 0.04))
                    break
                time.sleep(0.003)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills.append(f"{early or target} -> {_requests(fake_db)} requests")
            proc.wait(timeout=30)
        final = run(site, *SEND, "--transport", "sendgrid", check=False, SENDGRID_API_URL=url, **SG)
        assert final.returncode in (0, 6), final.stderr
        assert len(kills) >= 10, kills
        print("kills:", kills)

        db = site / "newsletter.db"
        ledger = query(db, "SELECT email, state FROM campaign_ledger")
        assert len(ledger) == PEOPLE
        by_state = Counter(state for _, state in ledger)
        assert set(by_state) <= {"accepted", "unknown"}, by_state
        sent = Counter(e for (e,) in query(fake_db, "SELECT email FROM messages"))
        # nobody got two copies: unknown batches are not resent without the user's word
        assert max(sent.values()) == 1
        accepted = {email for email, state in ledger if state == "accepted"}
        unknown = {email for email, state in ledger if state == "unknown"}
        assert accepted <= set(sent)  # everyone marked accepted really was accepted
        assert set(sent) <= accepted | unknown
        # only batches in flight at a kill can be unknown: at most concurrency per kill
        assert len(unknown) <= len(kills) * 2 * 100
        print("states after resume:", by_state)

        cid = query(db, "SELECT id FROM campaigns")[0][0]
        run(site, "resume", cid, "--retry-unknown", SENDGRID_API_URL=url, **SG)
    sent = Counter(e for (e,) in query(fake_db, "SELECT email FROM messages"))
    assert len(sent) == PEOPLE  # nobody lost
    doubled = {email for email, n in sent.items() if n > 1}
    assert doubled <= unknown  # duplicates only where the user asked to resend unknowns
    assert max(sent.values()) <= 2
    states = Counter(
        s for (s,) in query(site / "newsletter.db", "SELECT state FROM campaign_ledger")
    )
    assert states == {"accepted": PEOPLE}


def test_ctrl_c_pauses_after_the_requests_in_flight(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=3000, batch_size=100)
    fake_db = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(latency=0.2), fake_db) as url:
        proc = start(site, *SEND, "--transport", "sendgrid", SENDGRID_API_URL=url, **SG)
        deadline = time.monotonic() + 60
        while _requests(fake_db) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 5, err
        assert "interrupted (Ctrl-C)" in err and "newsletter resume" in err
        db = site / "newsletter.db"
        states = Counter(s for (s,) in query(db, "SELECT state FROM campaign_ledger"))
        assert set(states) == {"accepted", "pending"}  # answers in flight were recorded
        sent = Counter(e for (e,) in query(fake_db, "SELECT email FROM messages"))
        assert len(sent) == states["accepted"]
        cid = query(db, "SELECT id FROM campaigns")[0][0]
        run(site, "resume", cid, SENDGRID_API_URL=url, **SG)
    sent = Counter(e for (e,) in query(fake_db, "SELECT email FROM messages"))
    assert len(sent) == 3000 and set(sent.values()) == {1}
