"""`newsletter send / resume / status / campaigns` as a user runs them (real processes, files)."""

from __future__ import annotations

import email
import json
import subprocess
from collections import Counter
from email import policy
from pathlib import Path

from send_cli_helpers import SEND, command, env, make_site, query, run

from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "test-secret-value-0123456789abcdef"}


def test_outbox_send_then_already_sent_then_status(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    first = run(site, *SEND)
    assert "20 accepted" in first.stderr
    folders = list((site / "outbox").iterdir())
    assert len(folders) == 1
    cid = folders[0].name
    emls = sorted(folders[0].glob("*.eml"))
    assert len(emls) == 20 and (folders[0] / "index.html").exists()
    msg = email.message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "ada.lovelace@example.com"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Ada" in html and "%%" not in html
    assert "ada.lovelace@example.com" in (folders[0] / "index.html").read_text()

    again = run(site, *SEND)
    assert "already sent" in again.stdout
    assert len(list(folders[0].glob("*.eml"))) == 20

    status = json.loads(run(site, "status", cid, "--json").stdout)
    assert status["state"] == "done" and status["counts"]["accepted"] == 20
    assert status["total"] == 20 and status["posts"]
    listed = json.loads(run(site, "campaigns", "--json").stdout)
    assert [c["id"] for c in listed] == [cid]
    assert "accepted" in run(site, "status").stdout
    assert "was already sent" not in run(site, *SEND, "--new-campaign").stdout
    assert len(json.loads(run(site, "campaigns", "--json").stdout)) == 2
    # SEND fixes --now: a second --new-campaign must still be a new campaign
    assert "was already sent" not in run(site, *SEND, "--new-campaign").stdout
    assert len(json.loads(run(site, "campaigns", "--json").stdout)) == 3


def test_dry_run_and_test_send_leave_the_ledger_alone(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    dry = run(site, *SEND, "--dry-run")
    assert "nothing was sent" in dry.stdout and "20" in dry.stderr
    assert not (site / "outbox").exists()
    test = run(site, *SEND, "--test", "me@example.org", "--test", "ada.lovelace@example.com")
    assert "test sent to me@example.org, ada.lovelace@example.com" in test.stdout
    emls = sorted((site / "outbox").glob("test-*/*.eml"))
    assert len(emls) == 2
    msg = email.message_from_bytes(emls[1].read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("[TEST] ") and msg["List-Unsubscribe"]
    assert json.loads(run(site, "campaigns", "--json").stdout) == []


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    no_key = run(site, *SEND, "--transport", "sendgrid", check=False)
    assert no_key.returncode == 2
    assert no_key.stderr.strip().splitlines()[-1].startswith("error: SENDGRID_API_KEY is not set")
    no_secret = run(site, *SEND, "--transport", "sendgrid", check=False, SENDGRID_API_KEY="SG.x")
    assert no_secret.returncode == 2 and "NEWSLETTER_SECRET" in no_secret.stderr
    assert "Traceback" not in no_key.stderr + no_secret.stderr
    bad_test = run(site, *SEND, "--test", "not-an-address", check=False)
    assert bad_test.returncode == 2 and "--test" in bad_test.stderr
    missing = run(site, "resume", "nope", check=False)
    assert missing.returncode == 2 and "no campaign 'nope'" in missing.stderr
    unconfirmed = subprocess.run(
        command(*[a for a in SEND if a != "--yes"]),
        cwd=site,
        env=env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert not (site / "outbox").exists()


def test_suppressed_addresses_never_reach_sendgrid(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    run(site, "suppressions", "add", "ada.lovelace@example.com", "li.wei@example.org")
    db = tmp_path / "fake.db"
    remote = {"unsubscribes": ["zoe.muller@example.com"]}  # unsubscribed at SendGrid only
    with serve_in_thread(FaultPlan(), db, suppressions=remote) as url:
        out = run(site, *SEND, "--transport", "sendgrid", SENDGRID_API_URL=url, **SG)
    assert "17 accepted" in out.stderr and "suppressions:" in out.stderr
    sent = Counter(e for (e,) in query(db, "SELECT email FROM messages"))
    assert len(sent) == 17 and set(sent.values()) == {1}
    # an outbox send of the same issue was a rehearsal: it is a campaign of its own
    assert "was already sent" not in run(site, *SEND, "--transport", "outbox").stdout
    assert len(json.loads(run(site, "campaigns", "--json").stdout)) == 2
    gone = {"ada.lovelace@example.com", "li.wei@example.org", "zoe.muller@example.com"}
    assert not gone & set(sent)
    (unsub,) = query(
        db, "SELECT list_unsubscribe FROM messages WHERE email = 'grace.okonkwo@example.org'"
    )[0]
    assert unsub.startswith("<http://127.0.0.1:8000/u/")


def test_sandbox_and_paused_campaign_exit_codes(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=50, batch_size=10)
    db = tmp_path / "fake.db"
    plan = FaultPlan(script=["ok"] + ["500"] * 3)
    with serve_in_thread(plan, db) as url:
        args = [
            *SEND,
            "--transport",
            "sendgrid",
            "--sandbox",
            "--retry-base",
            "0.01",
            "--concurrency",
            "1",
        ]
        (site / "newsletter.toml").write_text(
            (site / "newsletter.toml")
            .read_text()
            .replace("max_consecutive_failures = 50", "max_consecutive_failures = 3")
        )
        paused = run(site, *args, check=False, SENDGRID_API_URL=url, **SG)
        assert paused.returncode == 5, paused.stderr
        assert (
            "paused: 3 failures in a row" in paused.stderr and "newsletter resume" in paused.stderr
        )
        cid = json.loads(run(site, "campaigns", "--json").stdout)[0]["id"]
        done = run(site, "resume", cid, "--retry-base", "0.01", SENDGRID_API_URL=url, **SG)
        assert "40 accepted" in done.stderr
    assert query(db, "SELECT DISTINCT sandbox FROM requests WHERE status = 202") == [(1,)]
    assert query(db, "SELECT count(DISTINCT email), count(*) FROM messages") == [(50, 50)]


def test_two_concurrent_sends_send_once(tmp_path: Path) -> None:
    site = make_site(tmp_path, subscribers=3000, batch_size=100)
    db = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(latency=0.02), db) as url:
        e = env(SENDGRID_API_URL=url, **SG)
        args = command(*SEND, "--transport", "sendgrid")
        procs = [
            subprocess.Popen(
                args, cwd=site, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 4]), outs
    if codes == [0, 4]:
        assert any("is being sent by process" in err for _, err in outs)
    sent = Counter(e for (e,) in query(db, "SELECT email FROM messages"))
    assert len(sent) == 3000 and set(sent.values()) == {1}


def test_every_send_command_and_flag_is_in_the_readme() -> None:
    import click
    from docs_helpers import docs_text

    from newsletter.cli import main

    readme = docs_text()
    ctx = click.Context(main)
    for name in ("send", "resume", "status", "campaigns"):
        command = main.get_command(ctx, name)
        assert command is not None, name
        assert f"newsletter {name}" in readme, name
        assert command.help and "Example" in command.help, name
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in readme, f"{name} {opt} is not documented in README.md"


def test_a_scheduled_send_gets_a_batch_id_and_can_be_cancelled(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    site = make_site(tmp_path, subscribers=30, batch_size=10)
    db = tmp_path / "fake.db"
    at = (datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds")
    sg = ["--transport", "sendgrid", "--skip-sync"]
    with serve_in_thread(FaultPlan(), db) as url:
        out = run(site, *SEND, *sg, "--send-at", at, SENDGRID_API_URL=url, **SG)
        assert "30 accepted" in out.stderr
        cid = json.loads(run(site, "campaigns", "--json").stdout)[0]["id"]
        assert f"newsletter cancel {cid}" in out.stdout
        # one batch id, made for this campaign, on every request
        (created,) = query(db, "SELECT batch_id FROM scheduled_sends")
        carried = query(db, "SELECT DISTINCT batch_id, send_at FROM requests")
        assert carried == [(created[0], int(datetime.fromisoformat(at).timestamp()))]
        assert len(query(db, "SELECT 1 FROM requests")) == 3

        cancel = run(site, "cancel", cid, SENDGRID_API_URL=url, **SG)
        assert "cancelled at SendGrid" in cancel.stdout
        assert query(db, "SELECT status FROM scheduled_sends") == [("cancel",)]

        status = json.loads(run(site, "status", cid, "--json").stdout)
        assert status["state"] == "cancelled"
        again = run(site, *SEND, *sg, "--send-at", at, SENDGRID_API_URL=url, **SG)
        assert "was cancelled" in again.stdout
        resume = run(site, "resume", cid, check=False, SENDGRID_API_URL=url, **SG)
        assert resume.returncode == 2 and "was cancelled" in resume.stderr
        assert len(query(db, "SELECT 1 FROM requests")) == 3  # nothing more was sent

    # a campaign that was not scheduled has nothing to call off
    (tmp_path / "other").mkdir()
    other = make_site(tmp_path / "other")
    run(other, *SEND)
    (ocid,) = [c["id"] for c in json.loads(run(other, "campaigns", "--json").stdout)]
    refused = run(other, "cancel", ocid, check=False, **SG)
    assert refused.returncode == 2 and "not a scheduled SendGrid send" in refused.stderr
