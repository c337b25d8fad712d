"""``newsletter doctor`` and :func:`newsletter.doctor.run_checks` against the recording fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Secrets, Settings, load_settings
from newsletter.doctor import Check, failures, run_checks
from newsletter.providers.sendgrid.fake import SENDING_SCOPES, Account, FaultPlan, serve_in_thread
from newsletter.store import MIGRATIONS, PG_MIGRATIONS, db, open_store
from newsletter.subscribers import import_subscribers

KEY = "SG.doctor-test-key-0123456789"
SECRET = "s" * 40
GOOD = """
[site]
url = "https://ada-notes.net"
[email]
from_email = "news@ada-notes.net"
postal_address = "Ada's Notes, 1 Rue Exemple, Paris"
[unsubscribe]
base_url = "https://news.ada-notes.net"
webhook_public_key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"
"""


def settings_from(tmp_path: Path, text: str = GOOD, **replace: str) -> Settings:
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def check_against(tmp_path: Path, settings: Settings, account: Account) -> list[Check]:
    with serve_in_thread(FaultPlan(), tmp_path / "fake.sqlite", account=account) as url:
        secrets = Secrets(sendgrid_api_key=KEY, signing_key=SECRET, sendgrid_api_url=url)
        return run_checks(settings, secrets, transport="sendgrid")


def test_the_defaults_fail_a_real_send_with_a_fix_for_each(tmp_path: Path) -> None:
    checks = run_checks(Settings(), Secrets(signing_key="short"), transport="sendgrid")
    failed = by_name(failures(checks))
    assert set(failed) == {"sender", "unsubscribe URL", "secret", "API key", "postal address"}
    assert "placeholder" in failed["sender"].message and failed["sender"].fix
    assert "only 5 bytes" in failed["secret"].message
    assert all(c.fix and c.setting for c in failed.values())
    assert by_name(checks)["webhook key"].status == "warn"


def test_an_unsubscribe_url_on_a_placeholder_domain_fails(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, **{"https://news.ada-notes.net": "https://news.example.org"})
    check = by_name(run_checks(settings, Secrets(signing_key=SECRET), transport="sendgrid"))[
        "unsubscribe URL"
    ]
    assert check.failed and "placeholder" in check.message


def test_a_rehearsal_only_warns(tmp_path: Path) -> None:
    checks = run_checks(Settings(), Secrets(), transport="outbox")
    assert {c.name for c in failures(checks)} == {"postal address"}
    assert by_name(checks)["sender"].status == "warn"
    assert by_name(checks)["API key"].status == "ok"


@pytest.mark.parametrize(
    "sender", ["news@example.com", "a@news.example.org", "x@example.net", "x@site.test"]
)
def test_placeholder_domains_fail(tmp_path: Path, sender: str) -> None:
    settings = settings_from(tmp_path, **{"news@ada-notes.net": sender})
    checks = run_checks(settings, Secrets(signing_key=SECRET), transport="sendgrid")
    assert by_name(checks)["sender"].status == "fail"


def with_readers(settings: Settings, *emails: str) -> Settings:
    people = settings.root / "people.csv"
    people.write_text("email\n" + "\n".join(emails) + "\n", encoding="utf-8")
    with open_store(settings.store_target) as store:
        import_subscribers(store.audience, people, now=datetime.now(UTC))
    return settings


def test_everything_in_place_passes(tmp_path: Path) -> None:
    account = Account(verified_senders=("news@ada-notes.net",))
    settings = with_readers(settings_from(tmp_path), "ann@ada-notes.net")
    checks = check_against(tmp_path, settings, account)
    assert [c.status for c in checks] == ["ok"] * len(checks), checks
    assert by_name(checks)["sender identity"].message == "news@ada-notes.net is a verified sender"


def test_an_authenticated_domain_is_enough(tmp_path: Path) -> None:
    account = Account(authenticated_domains=("ada-notes.net",))
    checks = check_against(tmp_path, settings_from(tmp_path), account)
    assert by_name(checks)["sender identity"].status == "ok"
    other = check_against(
        tmp_path, settings_from(tmp_path, **{"news@ada-notes.net": "news@other.net"}), account
    )
    identity = by_name(other)["sender identity"]
    assert identity.status == "fail" and "Sender Authentication" in identity.fix


def test_a_mail_send_only_key_fails_on_suppression_read(tmp_path: Path) -> None:
    account = Account(scopes=("mail.send",), verified_senders=("news@ada-notes.net",))
    scopes = by_name(check_against(tmp_path, settings_from(tmp_path), account))["API key scopes"]
    assert scopes.status == "fail" and "Suppressions read" in scopes.message
    assert "sync_suppressions = false" in scopes.fix
    without_sync = settings_from(tmp_path, GOOD + "[send]\nsync_suppressions = false\n")
    checks = by_name(check_against(tmp_path, without_sync, account))
    assert checks["API key scopes"].status == "ok"
    # without sender_verification.read / whitelabel.read the identity cannot be checked
    assert checks["sender identity"].status == "warn"


def test_an_unsubscribe_group_needs_its_scope(tmp_path: Path) -> None:
    scopes = tuple(s for s in SENDING_SCOPES if not s.startswith("asm."))
    account = Account(scopes=scopes, verified_senders=("news@ada-notes.net",))
    settings = settings_from(tmp_path, GOOD + "[send]\nasm_group_id = 42\n")
    check = by_name(check_against(tmp_path, settings, account))["API key scopes"]
    assert check.status == "fail" and "asm.groups.suppressions.read" in check.message
    assert (
        by_name(check_against(tmp_path, settings_from(tmp_path), account))["API key scopes"].failed
        is False
    )


def test_no_mail_send_scope_fails(tmp_path: Path) -> None:
    account = Account(scopes=("suppression.read",))
    check = by_name(check_against(tmp_path, settings_from(tmp_path), account))["API key scopes"]
    assert check.failed and "mail.send" in check.message


def test_sendgrid_out_of_reach_is_a_failure_not_a_traceback(tmp_path: Path) -> None:
    with serve_in_thread(FaultPlan(), tmp_path / "fake.sqlite") as url:
        pass  # the port is closed again
    secrets = Secrets(sendgrid_api_key=KEY, signing_key=SECRET, sendgrid_api_url=url)
    with httpx.Client(timeout=2) as client:
        checks = run_checks(
            settings_from(tmp_path), secrets, transport="sendgrid", http_client=client
        )
    check = by_name(checks)["API key scopes"]
    assert check.failed and "could not reach SendGrid" in check.message


def test_the_command_prints_fixes_exits_2_and_never_shows_secrets(tmp_path: Path) -> None:
    settings_from(tmp_path, **{"news@ada-notes.net": "news@example.com"})
    account = Account(authenticated_domains=("ada-notes.net",))
    with serve_in_thread(FaultPlan(), tmp_path / "fake.sqlite", account=account) as url:
        env = {"SENDGRID_API_KEY": KEY, "NEWSLETTER_SECRET": SECRET, "SENDGRID_API_URL": url}
        config = ["--config", str(tmp_path / "newsletter.toml")]
        text = CliRunner().invoke(main, ["doctor", *config], env=env)
        data = CliRunner().invoke(main, ["doctor", "--json", *config], env=env)
    assert text.exit_code == 2 and data.exit_code == 2
    assert "fail  sender" in text.output and "fix: set [email] from_email" in text.output
    assert "a real send refuses" in text.output
    checks = json.loads(data.stdout)
    assert isinstance(checks, list) and {c["status"] for c in checks} <= {"ok", "warn", "fail"}
    assert [c["name"] for c in checks if c["status"] == "fail"] == ["sender"]
    for output in (text.output, data.output):
        assert KEY not in output and SECRET not in output


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    def doctor(*, tty: bool, no_color: bool) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "SENDGRID_API_KEY")}
        if no_color:
            env["NO_COLOR"] = "1"
        command = [sys.executable, "-m", "newsletter", "doctor", "--transport", "outbox"]
        if not tty:
            return subprocess.run(
                command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
            ).stdout
        master, slave = os.openpty()
        subprocess.run(command, cwd=tmp_path, env=env, stdout=slave, check=False, timeout=60)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        return b"".join(chunks).decode()

    assert "\x1b[" in doctor(tty=True, no_color=False)
    assert "\x1b[" not in doctor(tty=True, no_color=True)
    piped = doctor(tty=False, no_color=False)
    assert "\x1b[" not in piped and "warn  sender" in piped


def store_of(settings: Settings) -> Check:
    return by_name(run_checks(settings, Secrets(signing_key=SECRET), transport="outbox"))["store"]


def test_the_store_is_looked_at_and_never_changed(tmp_path: Path) -> None:
    settings = settings_from(tmp_path)
    check = store_of(settings)
    assert (check.status, check.setting) == ("warn", "store.path")
    assert "no store yet" in check.message and "subscribers import" in check.fix
    assert not settings.db_path.exists()  # looking made nothing
    with_readers(settings, "ann@ada-notes.net", "bob@ada-notes.net", "cy@ada-notes.net")
    with open_store(settings.db_path) as store:
        store.audience.suppress(
            "cy@ada-notes.net", reason="bounced", source="t", now=datetime.now(UTC)
        )
    check = store_of(settings)
    assert check.status == "ok" and check.message.endswith(": 2 people to send to"), check


def test_a_postgresql_store_behind_on_migrations_or_out_of_reach_fails(
    tmp_path: Path, pg_url: str
) -> None:
    settings = settings_from(tmp_path, **{"[site]": f'[store]\nurl = "{pg_url}"\n[site]'})
    check = store_of(settings)
    assert check.status == "warn" and "an empty database" in check.message
    assert "store copy" in check.fix
    conn = db.connect(pg_url)
    db.migrate(conn, MIGRATIONS[:3], PG_MIGRATIONS)  # set up by an older version of the tool
    conn.close()
    check = store_of(settings)
    assert check.failed and f"{len(MIGRATIONS) - 3} migration(s) not applied" in check.message
    assert "newsletter store migrate" in check.fix
    assert check.message.startswith("PostgreSQL at postgresql://")
    # a server that is not there: one line naming it, never the password
    gone = "postgresql://u@127.0.0.1:9/n"
    out = subprocess.run(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "doctor",
         "--transport", "outbox"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "NEWSLETTER_DATABASE_URL": gone.replace("u@", "u:Pw-shh@"),
             "NEWSLETTER_SECRET": SECRET},
    )  # fmt: skip
    assert out.returncode == 2 and "Pw-shh" not in out.stdout + out.stderr
    assert "cannot connect to PostgreSQL at 127.0.0.1:9/n" in out.stdout
    assert "PGPASSWORD" in out.stdout
