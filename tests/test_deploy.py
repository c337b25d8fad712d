"""The deployment files in deploy/ run commands and flags that exist, and parse as what they are."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from newsletter.cli import main

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def check_command(words: list[str], where: str) -> None:
    """``words`` after ``newsletter``: each (sub)command exists and takes each --flag given."""
    command: click.Command = main
    ctx = click.Context(main)
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"{where}: no command {rest[0]!r} in {words}"
        command, rest = sub, rest[1:]
    assert not isinstance(command, click.Group), f"{where}: {words} names a group only"
    flags = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in flags, f"{where}: {words}: no flag {word}"


def newsletter_commands(text: str) -> list[list[str]]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("#", "COPY")) or "newsletter" not in line:
            continue
        if line.startswith("CMD [") or line.startswith("command: ["):
            words = json.loads(line.split(None, 1)[1])
        else:
            words = shlex.split(line.split("=", 1)[-1] if line.startswith("Exec") else line, True)
            words = [w for w in words if not w.startswith("$")]
        for i, word in enumerate(words):
            if re.fullmatch(r"(.*/bin/)?newsletter", word) and i + 1 < len(words):
                found.append(words[i + 1 :])
                break
    return found


def test_every_newsletter_command_in_deploy_exists() -> None:
    seen = 0
    for path in sorted(DEPLOY.iterdir()):
        for words in newsletter_commands(path.read_text(encoding="utf-8")):
            check_command(words, path.name)
            seen += 1
    assert seen >= 5  # serve (Dockerfile, unit), store migrate (compose, unit), send (CI)


def test_compose_and_workflow_are_what_they_claim() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"db", "migrate", "serve"} <= set(services)
    serve_env = services["serve"]["environment"]
    assert serve_env["NEWSLETTER_DATABASE_URL"].startswith("postgresql://")
    assert ":" not in serve_env["NEWSLETTER_DATABASE_URL"].split("//")[1].split("@")[0]
    assert services["serve"]["ports"] == ["127.0.0.1:8000:8000"]
    flow = yaml.safe_load((DEPLOY / "monthly-send.yml").read_text(encoding="utf-8"))
    job = flow["jobs"]["send"]
    assert set(job["env"]) >= {"NEWSLETTER_DATABASE_URL", "SENDGRID_API_KEY", "NEWSLETTER_SECRET"}
    assert all("secrets." in v for v in job["env"].values())  # no secret in the file itself
    assert any("newsletter send" in step.get("run", "") for step in job["steps"])


def test_the_systemd_unit_is_one_systemd_accepts(tmp_path: Path) -> None:
    """``systemd-analyze verify`` reads the unit as systemd will: a misspelt key or a bad value
    is only a warning there, so any output fails the test. The executable is this checkout's."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    exe = Path(sys.executable).with_name("newsletter")
    text = (DEPLOY / "newsletter-serve.service").read_text(encoding="utf-8")
    assert "/opt/newsletter/.venv/bin/newsletter" in text
    unit = tmp_path / "newsletter-serve.service"

    def verify(unit_text: str) -> str:
        unit.write_text(unit_text.replace("/opt/newsletter/.venv/bin/newsletter", str(exe)))
        out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
        return (out.stdout + out.stderr).strip()

    assert verify(text) == ""
    # the check can fail: a misspelt key is reported
    assert "Unknown key 'PrivateTpm'" in verify(text.replace("PrivateTmp=", "PrivateTpm="))
