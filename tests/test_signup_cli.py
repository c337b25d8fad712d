"""The sign-up commands as a user runs them: import --status pending --send-confirmations,
export with consent, stats, purge-pending, send-confirmations, snippet."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from docs_helpers import command_at
from signup_helpers import SECRET, free_socket, link_in, messages, wait_for, write_site

from newsletter import signup
from newsletter.cli import main
from newsletter.store import open_store


@pytest.fixture
def site(tmp_path: Path) -> Path:
    settings = write_site(
        tmp_path, base_url="https://news.example.org", site_url="https://example.org"
    )
    assert settings.config_path is not None
    return settings.config_path


def run(config: Path, *args: str, code: int = 0) -> Result:
    env = {"NEWSLETTER_SECRET": "cli-test-secret-0123456789", "SENDGRID_API_KEY": ""}
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=env)
    assert result.exit_code == code, result.output
    return result


def test_import_pending_with_confirmations(site: Path) -> None:
    csv_file = site.parent / "old-list.csv"
    csv_file.write_text("email,first_name\nada@example.net,Ada\nbo@example.net,Bo\n")
    out = run(site, "subscribers", "import", str(csv_file), "--status", "pending",
              "--send-confirmations").output  # fmt: skip
    assert "2 added" in out and "2 confirmation emails queued; 2 sent" in out
    outbox = site.parent / "outbox" / "signup-confirmations"
    sent = messages(outbox)
    assert sorted(m["To"] for m in sent) == ["ada@example.net", "bo@example.net"]
    assert all(link_in(m).startswith("https://news.example.org/subscribe/confirm/") for m in sent)
    stats = run(site, "subscribers", "stats").output
    assert "pending (signed up, not confirmed): 2" in stats
    assert "active (will be mailed): 0" in stats
    # running it again sends nobody a second email
    again = run(site, "subscribers", "send-confirmations", "--transport", "outbox").output
    assert again.startswith("0 confirmation emails queued")
    assert len(messages(outbox)) == 2

    export = run(site, "subscribers", "export", "-", "--include-suppressed").stdout
    rows = list(csv.DictReader(io.StringIO(export)))
    assert [r["email"] for r in rows] == ["ada@example.net", "bo@example.net"]
    assert rows[0]["status"] == "pending"
    assert rows[0]["consent_source"] == "import:old-list.csv"
    assert rows[0]["confirmed_at"] == ""
    # the default export is the mailing list: nobody is on it yet
    assert run(site, "subscribers", "export", "-").stdout.count("\n") == 1


def test_send_confirmations_needs_pending(site: Path) -> None:
    csv_file = site.parent / "list.csv"
    csv_file.write_text("email\nada@example.net\n")
    out = run(site, "subscribers", "import", str(csv_file), "--send-confirmations", code=2)
    assert "use it with --status pending" in out.output


def test_export_stats_and_purge_after_signups(site: Path) -> None:
    from newsletter.config import load_settings

    settings = load_settings(site)
    policy = signup.Policy.from_settings(settings)
    now = datetime.now(UTC)
    with open_store(settings.db_path) as store:
        for email, when in (("late@example.net", now - timedelta(days=9)), ("ok@example.net", now)):
            f = signup.clean_form({"email": email, "page": "https://example.org/news/"}, [], policy)
            signup.submit(
                store, f, client_address="198.51.100.7", secret="s" * 20, policy=policy, now=when
            )
        store.audience.suppress("ok@example.net", reason="unsubscribed", source="cli", now=now)
    rows = list(
        csv.DictReader(
            io.StringIO(run(site, "subscribers", "export", "-", "--include-suppressed").stdout)
        )
    )
    ok = next(r for r in rows if r["email"] == "ok@example.net")
    assert ok["consent_page"] == "https://example.org/news/"
    assert ok["consent_source"] == "form:form" and len(ok["consent_client_hash"]) == 32
    assert "198.51" not in "".join(ok.values())
    assert ok["suppressed"] == "unsubscribed"
    assert "unsubscribed: 1" in run(site, "subscribers", "stats").output
    assert (
        "1 expired pending subscribers would be deleted"
        in run(site, "subscribers", "purge-pending", "--dry-run").output
    )
    assert "1 expired" in run(site, "subscribers", "purge-pending").output
    listed = run(site, "subscribers", "list").output
    assert "late@example.net" not in listed and "ok@example.net" in listed


def test_snippet(site: Path) -> None:
    html = run(site, "snippet", "--tag", "meetups", "--form-name", "news-page").stdout
    assert '<form class="newsletter-signup" action="https://news.example.org/subscribe"' in html
    assert 'name="tags" value="meetups"' in html and 'value="news-page"' in html
    assert "<script>" not in html
    assert "fetch(form.action" in run(site, "snippet", "--fetch").stdout
    bad = run(site, "snippet", "--tag", "vip", code=2)
    assert "'vip' is not a list this form offers" in bad.output


def test_bad_signup_settings_name_the_key(tmp_path: Path) -> None:
    settings = write_site(
        tmp_path,
        base_url="https://news.example.org",
        site_url="https://example.org",
        signup='allowed_origin = "https://example.org/news/"\n',
    )
    assert settings.config_path is not None
    out = run(settings.config_path, "snippet", code=2).output
    assert "newsletter.toml: signup.allowed_origin:" in out and "is not an origin" in out


def _serve(config: Path, port: int, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "NEWSLETTER_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port",
         str(port)],
        env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_serve_sends_confirmations_from_its_mail_process(tmp_path: Path) -> None:
    sock, port = free_socket()
    sock.close()
    settings = write_site(
        tmp_path, base_url=f"http://127.0.0.1:{port}", site_url="https://example.org"
    )
    assert settings.config_path is not None
    proc = _serve(settings.config_path, port, NEWSLETTER_SECRET=SECRET)
    outbox = tmp_path / "outbox" / "signup-confirmations"
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return httpx.get(f"{base}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(up, 30)
        r = httpx.post(f"{base}/subscribe", data={"email": "pia@example.net"})
        assert r.status_code == 303
        assert wait_for(lambda: len(messages(outbox)) == 1, 30)
        link = link_in(messages(outbox)[0])
        assert httpx.post(link).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert SECRET not in err and link.rsplit("/", 1)[1] not in err
    with open_store(settings.db_path) as store:
        assert [r[1] for r in store.audience.iter_recipient_rows()] == ["pia@example.net"]


def test_serve_refuses_real_confirmation_mail_with_unsafe_settings(tmp_path: Path) -> None:
    settings = write_site(tmp_path, base_url="http://127.0.0.1:9", site_url="https://example.org")
    assert settings.config_path is not None
    # a secret of the right length: the sender and the http links are what is unsafe here (a
    # short secret is refused before that, by serve itself: tests/test_hardening_secrets.py)
    proc = _serve(settings.config_path, 9, SENDGRID_API_KEY="SG.test", NEWSLETTER_SECRET=SECRET)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "confirmation emails would go out through SendGrid with unsafe settings" in err
    assert "is on a placeholder domain" in err  # news@harbour-lights.example.org
    assert "is not https" in err and "Traceback" not in err


DOC = (Path(__file__).resolve().parent.parent / "docs" / "signup.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "path",
    [
        ("snippet",),
        ("subscribers", "purge-pending"),
        ("subscribers", "send-confirmations"),
        ("subscribers", "import"),
    ],
    ids=" ".join,
)
def test_signup_commands_are_documented(path: tuple[str, ...]) -> None:
    import click

    assert f"newsletter {' '.join(path)}" in DOC
    cmd = command_at(path)
    assert cmd.help and "Example" in cmd.help
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help, f"{param.opts} of {path} has no help"


def test_confirmations_through_sendgrid(tmp_path: Path) -> None:
    """Real mail: the recording fake SendGrid on 127.0.0.1 gets one request for both emails."""
    import sqlite3

    from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

    settings = write_site(tmp_path, base_url="https://news.example.org", site_url="https://x.org")
    assert settings.config_path is not None
    (tmp_path / "list.csv").write_text("email\nada@example.net\nbo@example.net\n")
    fake_db = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(), fake_db) as url:
        env = {"SENDGRID_API_KEY": "SG.fake-key", "SENDGRID_API_URL": url}
        result = CliRunner().invoke(
            main,
            ["--config", str(settings.config_path), "subscribers", "import",
             str(tmp_path / "list.csv"), "--status", "pending", "--send-confirmations"],
            env={**env, "NEWSLETTER_SECRET": SECRET},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    with sqlite3.connect(fake_db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM requests ORDER BY no")]
        sent = conn.execute("SELECT email, recipient_id, subject FROM messages").fetchall()
    assert statuses == [202]  # one request, one personalization per reader
    assert sorted(e for e, _, _ in sent) == ["ada@example.net", "bo@example.net"]
    for _, recipient_id, subject in sent:
        assert subject == "Confirm your subscription to Harbour Lights Meetup"
        assert recipient_id.startswith("confirm-")
    with open_store(settings.db_path) as store:
        assert store.signup.queued() == 0


def test_serve_stops_on_a_broken_confirmation_template(tmp_path: Path) -> None:
    settings = write_site(tmp_path, base_url="http://127.0.0.1:9", site_url="https://x.org")
    assert settings.config_path is not None
    (tmp_path / "templates" / "signup").mkdir(parents=True)
    (tmp_path / "templates" / "signup" / "confirm_email.txt.j2").write_text(
        "Confirm here:\n{{ confirm_url }\n", encoding="utf-8"
    )
    proc = _serve(settings.config_path, 9, NEWSLETTER_SECRET=SECRET)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "signup/confirm_email.txt.j2:2: template syntax error" in err
    assert "Traceback" not in err
