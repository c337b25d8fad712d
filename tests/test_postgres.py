"""A shared store on a real PostgreSQL server (a private cluster on 127.0.0.1): choosing it,
its migrations, copying a store both ways, errors that never show the password, and `serve`
on one host honouring an unsubscribe for a `send` started elsewhere."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from audience_helpers import wait_until_serving
from send_cli_helpers import SEND, make_site, run

from newsletter.config import load_settings
from newsletter.errors import StoreError
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread
from newsletter.store import MIGRATIONS, PG_MIGRATIONS, db, open_store
from newsletter.unsubscribe import make_token

PASSWORD = "Hunter2-not-shown"
SG = {"SENDGRID_API_KEY": "SG.test", "NEWSLETTER_SECRET": "pg-test-secret-0123456789abcdefghij"}


def with_password(url: str) -> str:
    # the test cluster trusts local connections, so any password is accepted and goes unused
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def rows_of(path: Path, table: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def test_copy_to_postgresql_and_back_keeps_every_row_and_never_reuses_an_id(
    tmp_path: Path, pg_url: str
) -> None:
    site = make_site(tmp_path)
    run(site, *SEND, "--transport", "outbox")
    run(site, "suppressions", "add", "someone@elsewhere.org", "--reason", "bounced")
    # the newest subscriber leaves: the highest id is now only in the id counter
    run(site, "subscribers", "remove", "kwame.mensah@example.org")
    src = site / "newsletter.db"
    high = sqlite3.connect(src).execute("SELECT seq FROM sqlite_sequence").fetchone()[0]
    url = with_password(pg_url)  # from the environment only; a flag takes the password-less URL

    out = run(site, "store", "copy", "--to", pg_url, PGPASSWORD=PASSWORD)
    assert PASSWORD not in out.stdout + out.stderr
    assert "counts and checksums match" in out.stdout
    again = run(site, "store", "copy", "--to", pg_url, check=False, PGPASSWORD=PASSWORD)
    assert again.returncode == 1 and "is not empty" in again.stderr and "--force" in again.stderr
    assert PASSWORD not in again.stdout + again.stderr
    run(site, "store", "copy", "--to", pg_url, "--force", PGPASSWORD=PASSWORD)

    back = tmp_path / "back.db"
    home = run(site, "store", "copy", "--to", str(back), NEWSLETTER_DATABASE_URL=url)
    assert "postgres:***@" in home.stdout and PASSWORD not in home.stdout + home.stderr
    tables = [
        "subscribers",
        "subscriber_tags",
        "removed_subscribers",
        "suppressions",
        "suppression_log",
        "campaigns",
        "campaign_posts",
        "campaign_batches",
        "campaign_ledger",
    ]
    for table in tables:
        assert rows_of(back, table) == rows_of(src, table), table
    assert rows_of(src, "campaign_ledger") and rows_of(src, "suppressions")

    # ids are never reused: unsubscribe tokens carry them
    (site / "new.csv").write_text("email\nnewcomer@x.org\n", encoding="utf-8")
    run(site, "subscribers", "import", "new.csv", NEWSLETTER_DATABASE_URL=url)
    with open_store(url) as store:
        sub = store.audience.get_subscriber("newcomer@x.org")
        assert sub is not None and sub.id > high


def test_an_unreachable_server_is_one_line_naming_host_and_database_exit_2(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"postgresql://newsletter:{PASSWORD}@127.0.0.1:{port}/letters"
    proc = run(tmp_path, "subscribers", "stats", check=False, NEWSLETTER_DATABASE_URL=url)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: cannot connect to PostgreSQL at 127.0.0.1:{port}/letters")
    assert "refused" in lines[0].lower()
    assert PASSWORD not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_store_url_from_file_or_environment_is_never_shown(tmp_path: Path) -> None:
    toml = tmp_path / "newsletter.toml"
    toml.write_text('[store]\nurl = "postgresql://u@db.internal/n"\n', "utf-8")
    assert load_settings(toml, environ={}).store_target == "postgresql://u@db.internal/n"
    env_url = f"postgresql://other:{PASSWORD}@db2.internal/n"  # the environment may hold one
    settings = load_settings(toml, environ={"NEWSLETTER_DATABASE_URL": env_url})
    assert settings.store_url == env_url and PASSWORD not in repr(settings)
    # a password in the file or in --store is refused, without repeating it
    for url in (
        f"postgresql://u:{PASSWORD}@db.internal/n",
        f"postgresql://db/n?password={PASSWORD}",
    ):
        toml.write_text(f'[store]\nurl = "{url}"\n', "utf-8")
        refused = run(tmp_path, "subscribers", "stats", check=False)
        assert refused.returncode == 2 and "store.url" in refused.stderr, refused.stderr
        assert "PGPASSWORD" in refused.stderr and PASSWORD not in refused.stderr
    toml.write_text("", "utf-8")
    flag = run(
        tmp_path, "--store", f"postgresql://u:{PASSWORD}@h/n", "subscribers", "stats", check=False
    )
    assert flag.returncode == 2 and "--store" in flag.stderr and PASSWORD not in flag.stderr
    copy = run(tmp_path, "store", "copy", "--to", f"postgresql://u:{PASSWORD}@h/n", check=False)
    assert copy.returncode == 2 and "--to" in copy.stderr and PASSWORD not in copy.stderr
    toml.write_text('[store]\nurl = "mysql://u@db/n"\n', encoding="utf-8")
    bad = run(tmp_path, "subscribers", "stats", check=False)
    assert bad.returncode == 2 and "newsletter.toml" in bad.stderr and "store.url" in bad.stderr
    assert "postgresql://" in bad.stderr and "Traceback" not in bad.stderr


def test_start_up_checks_migrations_and_store_migrate_applies_them(
    tmp_path: Path, pg_url: str
) -> None:
    conn = db.connect(pg_url)
    db.migrate(conn, MIGRATIONS[:3])  # a store an older version of the tool set up
    conn.close()
    with pytest.raises(StoreError, match="newsletter store migrate"):
        open_store(pg_url)
    out = run(tmp_path, "store", "migrate", NEWSLETTER_DATABASE_URL=pg_url)
    assert f"applied {len(MIGRATIONS) - 3} migration(s)" in out.stdout
    assert "up to date" in run(tmp_path, "store", "migrate", NEWSLETTER_DATABASE_URL=pg_url).stdout
    open_store(pg_url).close()


def test_the_ledger_is_laid_out_for_one_update_per_recipient(pg_url: str) -> None:
    # campaigns.0006: half-empty pages (HOT updates when a batch is answered), no per-row
    # foreign-key check; a store migrated from before it gets the same
    conn = db.connect(pg_url)
    older = [m for m in MIGRATIONS if m[0] != "campaigns.0006_ledger_for_bulk_updates"]
    db.migrate(conn, older, PG_MIGRATIONS)
    fks = (
        "SELECT count(*) FROM pg_constraint"
        " WHERE conrelid = 'campaign_ledger'::regclass AND contype = 'f'"
    )
    assert conn.execute(fks).fetchone()[0] == 1
    assert db.migrate(conn, MIGRATIONS, PG_MIGRATIONS) == ["campaigns.0006_ledger_for_bulk_updates"]
    options = "SELECT reloptions FROM pg_class WHERE relname = 'campaign_ledger'"
    assert conn.execute(options).fetchone()[0] == ["fillfactor=50"]
    assert conn.execute(fks).fetchone()[0] == 0
    conn.close()


def test_workers_need_postgresql(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    proc = run(site, *SEND, "--transport", "outbox", "--workers", "2", check=False)
    assert proc.returncode == 2
    assert "--workers 2 needs a PostgreSQL store" in proc.stderr
    assert not (site / "outbox").exists()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_one_click_unsubscribe_on_the_server_is_honoured_by_a_send_elsewhere(
    tmp_path: Path, pg_url: str
) -> None:
    # the public host: only `serve`, its own folder, the same store URL
    host = tmp_path / "public-host"
    host.mkdir()
    (host / "newsletter.toml").write_text(
        '[site]\nname = "Shared News"\n\n[signup]\nenabled = false\n', encoding="utf-8"
    )
    # the organiser's machine: the site, the subscribers (imported into PostgreSQL)
    organiser = tmp_path / "organiser"
    organiser.mkdir()
    site = make_site(organiser)
    run(site, "subscribers", "import", "subs.csv", NEWSLETTER_DATABASE_URL=pg_url)
    with open_store(pg_url) as store:
        people = [s.email for s in store.audience.iter_subscribers()]
        leaving = store.audience.get_subscriber(people[1])
        assert leaving is not None and len(people) > 3
    token = make_token(SG["NEWSLETTER_SECRET"], leaving.id, leaving.email)

    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "serve",
         "--port", str(port)],
        cwd=host,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SENDGRID_")},
            "NEWSLETTER_DATABASE_URL": pg_url,
            "NEWSLETTER_SECRET": SG["NEWSLETTER_SECRET"],
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(proc, base)
        r = httpx.post(f"{base}/u/{token}", content=b"List-Unsubscribe=One-Click")
        assert (r.status_code, r.text) == (200, "unsubscribed\n")
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert not (host / "newsletter.db").exists()  # the server wrote to PostgreSQL only

    fake = tmp_path / "fake.db"
    with serve_in_thread(FaultPlan(), fake) as url:
        run(
            site,
            *SEND,
            "--transport",
            "sendgrid",
            SENDGRID_API_URL=url,
            NEWSLETTER_DATABASE_URL=pg_url,
            **SG,
        )
    sent = [r[0] for r in sqlite3.connect(fake).execute("SELECT email FROM messages")]
    assert sorted(sent) == sorted(p for p in people if p != leaving.email)
