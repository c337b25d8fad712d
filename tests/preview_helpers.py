"""Helpers for the preview tests: a copy of the example site and `newsletter preview` running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

NOW = "2026-11-01T09:00:00"


def copy_site(project_root: Path, dest: Path) -> Path:
    """The example posts and config in ``dest`` (so tests can edit them); returns the config."""
    shutil.copytree(project_root / "content", dest / "content")
    text = (project_root / "newsletter.toml").read_text(encoding="utf-8")
    config = dest / "newsletter.toml"
    config.write_text(text.replace('path = "newsletter.db"', 'path = "store.db"'), "utf-8")
    (dest / "templates").mkdir()
    return config


@contextmanager
def running_preview(config: Path, *args: str) -> Iterator[str]:
    """Start ``newsletter preview --port 0`` as a user would; yield its base URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("SENDGRID_API_KEY",)}
    env["NEWSLETTER_SECRET"] = "preview-test-secret"
    cmd = [sys.executable, "-c", "from newsletter.cli import main; main()"]
    cmd += ["--config", str(config), "preview"]
    proc = subprocess.Popen(
        [*cmd, "--port", "0", "--now", NOW, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=config.parent,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("preview: "):
            proc.kill()
            rest = proc.stdout.read()
            raise RuntimeError(f"preview did not start: {line!r} {rest}")
        url = line.split()[1].rstrip("/")
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url + "/api/version", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def wait_for(check: Callable[[], bool], timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()
