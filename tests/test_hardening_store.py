"""Issue 10 item 9: a damaged, read-only, locked, emptied or vanished store is one line that
names the file and says what to do, exit 7, never a traceback, never a silent new store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from newsletter.errors import StoreFault
from newsletter.store import db, open_store

CSV = "email,first_name\n" + "".join(f"u{i}@example.net,N{i}\n" for i in range(3000))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "newsletter.toml").write_text('[store]\npath = "newsletter.db"\n')
    (tmp_path / "people.csv").write_text(CSV)
    return tmp_path


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from newsletter.cli import main; main()", *args],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
    )


def fails(out: subprocess.CompletedProcess[str], message: str) -> None:
    assert "Traceback" not in out.stderr
    assert (out.returncode, out.stderr.strip()) == (7, f"error: {message}")


def imported(site: Path) -> Path:
    out = cli(site, "subscribers", "import", "people.csv")
    assert out.returncode == 0, out.stderr
    store = site / "newsletter.db"
    assert (site / "newsletter.db.marker").exists() and store.stat().st_size > 0
    return store


def test_a_damaged_header_and_a_damaged_page(site: Path) -> None:
    store = imported(site)
    backup = store.read_bytes()
    with store.open("r+b") as f:
        f.seek(4096 * 40)
        f.write(b"\xff" * 4096 * 20)  # pages of the subscribers table
    recover = (
        f'Recover what it holds with: sqlite3 {store} ".recover" | sqlite3 {store}.recovered, '
        "keep the damaged file, and put newsletter.db.recovered in its place (or restore a "
        "backup)"
    )
    fails(
        cli(site, "subscribers", "export", "-"),
        f"{store}: the database is damaged (database disk image is malformed); nothing was "
        f"changed. {recover}",
    )
    store.write_bytes(b"this is not a database" + backup[22:])
    fails(
        cli(site, "subscribers", "stats"),
        f"{store}: the database is damaged (file is not a database); nothing was changed. "
        f"{recover}",
    )


def test_an_emptied_store_is_never_replaced_by_a_new_one(site: Path) -> None:
    store = imported(site)
    store.write_bytes(b"")  # truncated: `> newsletter.db`, a failed copy, a full disk
    fails(
        cli(site, "subscribers", "stats"),
        f"{store}: the store file is empty (0 bytes) but held a store: it was truncated or "
        "overwritten. Restore newsletter.db from a backup (keep any newsletter.db-wal beside "
        "it); to start a new, empty store instead, delete newsletter.db and "
        "newsletter.db.marker",
    )
    assert store.stat().st_size == 0  # left as found
    store.unlink()
    fails(
        cli(site, "subscribers", "stats"),
        f"{store}: the store is missing, but one was here (newsletter.db.marker says so): "
        "restore newsletter.db from a backup; to start a new, empty store instead, delete "
        "newsletter.db.marker",
    )
    assert not store.exists()
    (site / "newsletter.db.marker").unlink()  # the way to really start over
    assert cli(site, "subscribers", "stats").returncode == 0


def test_an_emptied_store_with_its_wal_left_is_refused_even_without_a_marker(
    tmp_path: Path,
) -> None:
    store = tmp_path / "n.db"
    store.write_bytes(b"")
    (tmp_path / "n.db-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 28)
    with pytest.raises(StoreFault, match=r"the store file is empty \(0 bytes\) but held a store"):
        open_store(store)


def test_new_stores_still_start_empty(tmp_path: Path) -> None:
    open_store(tmp_path / "fresh" / "n.db").close()  # no file yet
    (tmp_path / "touched.db").write_bytes(b"")  # `touch newsletter.db`: no marker, no WAL
    with open_store(tmp_path / "touched.db") as store:
        assert store.audience.count_suppressions() == 0
    assert (tmp_path / "touched.db.marker").exists()


def test_a_read_only_store(site: Path) -> None:
    store = imported(site)
    if os.geteuid() != 0:
        store.chmod(0o444)
    elif (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(store)], capture_output=True, check=False).returncode
    ):  # root may write any file that is not immutable
        pytest.skip("running as root without chattr +i: cannot make a file read-only")
    try:
        out = cli(site, "subscribers", "stats")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(store)], check=True)
    fails(
        out,
        f"{store}: the database is read-only for this user: make newsletter.db and its folder "
        "writable (SQLite also writes newsletter.db-wal and newsletter.db-shm beside it), or "
        "run as the user that owns it",
    )


def test_a_store_locked_too_long(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    open_store(path).close()
    holder = db.connect(path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreFault) as err:
            open_store(path, timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert err.value.exit_code == 7
    assert err.value.format() == (
        f"{path}: the database stayed locked for more than 0.2 s (database is locked): another "
        "process (a newsletter send or serve, or sqlite3) holds it; let it finish or stop it, "
        "then try again"
    )


def test_serve_says_so_before_starting(site: Path) -> None:
    store = imported(site)
    store.write_bytes(b"")
    out = subprocess.run(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "serve", "--port", "0"],
        cwd=site, capture_output=True, text=True, timeout=60,
        env={**os.environ, "NEWSLETTER_SECRET": "s" * 40},
    )  # fmt: skip
    assert out.returncode == 7 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"error: {store}: the store file is empty (0 bytes)")


def test_healthz_notices_a_store_emptied_under_a_running_server(tmp_path: Path) -> None:
    from audience_helpers import serve

    from newsletter.web.app import WebConfig, create_app

    path = tmp_path / "n.db"
    with serve(create_app(WebConfig(store_path=path, secret="s" * 40))) as url:
        assert httpx.get(f"{url}/healthz").text == "ok\n"
        path.write_bytes(b"")
        r = httpx.get(f"{url}/healthz")
        assert (r.status_code, r.text) == (503, "store unavailable\n")
