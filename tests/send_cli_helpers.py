"""Run the real `newsletter` command in a temporary copy of the example site."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-01T09:00"
SEND = ["send", "--month", "2026-10", "--now", NOW, "--yes", "--no-progress"]


def make_site(tmp: Path, *, subscribers: int = 0, batch_size: int = 1000) -> Path:
    site = tmp / "site"
    site.mkdir()
    shutil.copytree(ROOT / "content", site / "content")
    if (ROOT / "templates").is_dir():
        shutil.copytree(ROOT / "templates", site / "templates")
    toml = (ROOT / "newsletter.toml").read_text(encoding="utf-8")
    extra = f"batch_size = {batch_size}\nmax_consecutive_failures = 50\n"
    toml = (
        toml.replace("[send]\n", "[send]\n" + extra, 1)
        if "[send]\n" in toml
        else (toml + "\n[send]\n" + extra)
    )
    (site / "newsletter.toml").write_text(toml, encoding="utf-8")
    if subscribers:
        lines = ["email,first_name"] + [f"p{i}@example.net,P{i}" for i in range(subscribers)]
        (site / "subs.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        shutil.copy(ROOT / "subscribers.example.csv", site / "subs.csv")
    run(site, "subscribers", "import", "subs.csv")
    return site


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "NEWSLETTER_"))}
    e.update(extra)
    return e


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from newsletter.cli import main; main()", *args]


def start(site: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    """``newsletter ARGS`` in ``site`` as a process of its own (to signal or kill it mid-way),
    its output captured; ``extra`` is added to the environment (see :func:`env`)."""
    return subprocess.Popen(
        command(*args),
        cwd=site,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(
    site: Path, *args: str, check: bool = True, **extra: str
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        command(*args), cwd=site, env=env(**extra), capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
