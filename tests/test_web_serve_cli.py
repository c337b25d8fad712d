"""``newsletter serve`` as a user runs it: a subprocess wired from settings and the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from audience_helpers import wait_until_serving

from newsletter.store import open_store
from newsletter.unsubscribe import SECRET_FILE, make_token

SECRET = "serve-cli-secret-0123456789abcdefghij"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "--config",
         str(tmp_path / "newsletter.toml"), "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_serve_unsubscribes_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    (tmp_path / "newsletter.toml").write_text(
        f'[site]\nname = "CLI News"\n[store]\npath = "{db}"\n', encoding="utf-8"
    )
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("email,first_name\nann@x.org,Ann\n", encoding="utf-8")
    with open_store(db) as store:
        from datetime import UTC, datetime

        from newsletter.subscribers import import_subscribers

        import_subscribers(store.audience, csv_path, now=datetime.now(UTC))
        sub = store.audience.get_subscriber("ann@x.org")
        assert sub is not None
    token = make_token(SECRET, sub.id, sub.email)
    port = _port()
    proc = _serve(tmp_path, {"NEWSLETTER_SECRET": SECRET}, port)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(proc, base, 20)
        page = httpx.get(f"{base}/u/{token}")
        assert page.status_code == 200 and "CLI News" in page.text
        r = httpx.post(f"{base}/u/{token}", content=b"List-Unsubscribe=One-Click")
        assert (r.status_code, r.text) == (200, "unsubscribed\n")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert SECRET not in err and token not in err  # no access log, no secret in logs
    with open_store(db) as store:
        assert store.audience.is_suppressed("ann@x.org")


def test_serve_without_a_secret_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(
        f'[store]\npath = "{tmp_path / "n.db"}"\n', encoding="utf-8"
    )
    proc = _serve(tmp_path, {"NEWSLETTER_SECRET": ""}, _port())
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.startswith("error: NEWSLETTER_SECRET is not set")
    assert "Traceback" not in err
    assert not (tmp_path / SECRET_FILE).exists()
