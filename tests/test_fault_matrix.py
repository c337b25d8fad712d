"""The fault matrix (issue #10): kill -9, SIGTERM and SIGHUP at ten moments each during a
20,000-recipient send to the recording fake, then resume.

- SIGTERM / SIGHUP: the sender pauses (exit 5) with 0 ``unknown``; ``resume`` finishes it.
- kill -9: every recipient the fake did not record and the ledger did not settle is
  ``unknown``; SendGrid's webhook events (replayed from what the fake accepted) settle the
  unknown ones it took, and ``resume --retry-unknown`` sends only the rest.

Every trial ends with each of the 20,000 recipients holding exactly one message of that
campaign at the fake. Slow (about two minutes): ``make test-slow`` and CI run it.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from audience_helpers import replay_processed_events
from send_cli_helpers import make_site, query, run, start

from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

pytestmark = pytest.mark.slow

PEOPLE = 20_000
BATCH = 500  # 40 requests a campaign
SG = {"SENDGRID_API_KEY": "SG.matrix", "NEWSLETTER_SECRET": "fault-matrix-secret-0123456789abcd"}
SEND = ["send", "--month", "2026-10", "--now", "2026-11-01T09:00", "--yes", "--no-progress",
        "--transport", "sendgrid", "--new-campaign", "--skip-sync"]  # fmt: skip
LEDGER = "SELECT email FROM campaign_ledger WHERE campaign_id = ?"
MESSAGES = "SELECT email FROM messages WHERE campaign_id = ?"
MOMENTS = [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]  # requests seen by the fake before the signal


def _requests(fake_db: Path) -> int:
    try:
        return int(query(fake_db, "SELECT count(*) FROM requests")[0][0])
    except Exception:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_ten_moments_of_one_signal_never_duplicate_or_lose_anyone(
    tmp_path: Path, sig: signal.Signals
) -> None:
    site = make_site(tmp_path, subscribers=PEOPLE, batch_size=BATCH)
    fake_db = tmp_path / "fake.db"
    db = site / "newsletter.db"
    outcomes = []
    with serve_in_thread(FaultPlan(latency=0.02), fake_db, keep_messages=True) as url:
        for moment in MOMENTS:
            before = _requests(fake_db)
            known = {c for (c,) in query(db, "SELECT id FROM campaigns")}
            proc = start(site, *SEND, "--concurrency", "4", SENDGRID_API_URL=url, **SG)
            deadline = time.monotonic() + 120
            while _requests(fake_db) < before + moment and time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                time.sleep(0.002)
            if proc.poll() is None:
                os.kill(proc.pid, sig)
            _, err = proc.communicate(timeout=120)
            (cid,) = {c for (c,) in query(db, "SELECT id FROM campaigns")} - known
            states = Counter(
                s
                for (s,) in query(
                    db, "SELECT state FROM campaign_ledger WHERE campaign_id = ?", cid
                )
            )
            if sig != signal.SIGKILL:
                assert proc.returncode in (0, 5), err
                assert states.get("unknown", 0) == 0, (moment, states)  # a signal loses nothing
                if proc.returncode == 5:
                    run(site, "resume", cid, "--no-progress", SENDGRID_API_URL=url, **SG)
            else:
                resumed = run(site, "resume", cid, "--no-progress", check=False,
                              SENDGRID_API_URL=url, **SG)  # fmt: skip
                assert resumed.returncode in (0, 6), resumed.stderr
                accepted_by_fake = {
                    e
                    for (e,) in query(
                        fake_db, "SELECT email FROM messages WHERE campaign_id = ?", cid
                    )
                }
                unknown = {
                    e
                    for (e,) in query(
                        db,
                        "SELECT email FROM campaign_ledger WHERE campaign_id = ?"
                        " AND state = 'unknown'",
                        cid,
                    )
                }
                # whoever is missing at the fake is unknown in the ledger, never silently lost
                everyone = {e for (e,) in query(db, LEDGER, cid)}
                assert everyone - accepted_by_fake <= unknown
                replay_processed_events(db, fake_db, SG["NEWSLETTER_SECRET"], cid)
                still = {
                    e
                    for (e,) in query(
                        db,
                        "SELECT email FROM campaign_ledger WHERE campaign_id = ?"
                        " AND state = 'unknown'",
                        cid,
                    )
                }
                assert still == unknown - accepted_by_fake
                if still:
                    run(site, "resume", cid, "--retry-unknown", "--no-progress",
                        SENDGRID_API_URL=url, **SG)  # fmt: skip
            got = Counter(
                e
                for (e,) in query(fake_db, "SELECT email FROM messages WHERE campaign_id = ?", cid)
            )
            assert len(got) == PEOPLE and set(got.values()) == {1}, (moment, len(got))
            outcomes.append((moment, dict(states)))
    print(sig.name, outcomes)
