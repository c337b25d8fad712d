"""``newsletter render`` and ``newsletter lint`` as a user runs them, on the example site."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main

NOW = "2026-11-01T09:00:00"


@pytest.fixture
def site(tmp_path: Path, project_root: Path) -> Path:
    """A config in tmp_path that reads the example posts and keeps store and archive in tmp."""
    text = (project_root / "newsletter.toml").read_text(encoding="utf-8")
    text = text.replace('content = ["content"]', f'content = ["{project_root / "content"}"]')
    text = text.replace('path = "newsletter.db"', 'path = "store.db"')
    config = tmp_path / "newsletter.toml"
    config.write_text(text, encoding="utf-8")
    return config


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_render_writes_html_text_eml_and_archive(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    code, stdout, stderr = run(
        site, "render", "--month", "2026-10", "--now", NOW, "--out", str(out), "--archive"
    )
    assert code == 0, stderr
    assert "subject: NorthBay PyConf — October 2026" in stdout
    assert "lint: 0 error(s), 0 warning(s)" in stderr
    html = (out / "email.html").read_text(encoding="utf-8")
    text = (out / "email.txt").read_text(encoding="utf-8")
    assert "All Talk Videos Are Online" in html and "All Talk Videos Are Online" in text
    assert "%%" not in html and "%%" not in text  # generic values filled in
    message = email.message_from_bytes(
        (out / "email.eml").read_bytes(), policy=email.policy.default
    )
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "NorthBay PyConf — October 2026"
    assert message["From"] == "NorthBay PyConf <news@northbay-pyconf.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<mailto:unsubscribe@northbay-pyconf.example.org" in message["List-Unsubscribe"]
    assert message["Message-ID"] and message["Date"]
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert html_part.get_content().replace("\r\n", "\n") == html
    # the public archive: the page without personal data, and an index listing it
    page = tmp_path / "archive" / "2026-10" / "index.html"
    assert page.exists() and "Hi there," in page.read_text(encoding="utf-8")
    index = (tmp_path / "archive" / "index.html").read_text(encoding="utf-8")
    assert 'href="2026-10/"' in index and "NorthBay PyConf — October 2026" in index


def test_render_json_summary(site: Path, tmp_path: Path) -> None:
    code, stdout, _ = run(
        site,
        "render",
        "--post",
        "2026-10-05-conference-wrap-up",
        "--now",
        NOW,
        "--out",
        str(tmp_path / "o"),
        "--json",
    )
    assert code == 0
    data = json.loads(stdout)
    assert set(data) == {
        "subject",
        "preheader",
        "html_bytes",
        "text_bytes",
        "posts",
        "warnings",
        "errors",
    }
    assert data["subject"] == "2026 Conference Wrap-Up"
    assert [Path(p).name for p in data["posts"]] == ["2026-10-05-conference-wrap-up.md"]
    assert data["html_bytes"] > 5000 and data["errors"] == []
    assert not (tmp_path / "archive").exists()


def test_render_as_subscriber(site: Path, tmp_path: Path, project_root: Path) -> None:
    code, _, stderr = run(
        site, "subscribers", "import", str(project_root / "subscribers.example.csv")
    )
    assert code == 0, stderr
    out = tmp_path / "as"
    env = {"NEWSLETTER_SECRET": "test-secret-for-render"}
    code, _, stderr = run(
        site,
        "render",
        "--month",
        "2026-10",
        "--now",
        NOW,
        "--as",
        "ada.lovelace@example.com",
        "--out",
        str(out),
        env=env,
    )
    assert code == 0, stderr
    html = (out / "email.html").read_text(encoding="utf-8")
    assert "Hi Ada," in html
    message = email.message_from_bytes(
        (out / "email.eml").read_bytes(), policy=email.policy.default
    )
    assert message["To"] == "Ada Lovelace <ada.lovelace@example.com>"
    unsubscribe = message["List-Unsubscribe"].split(",")[0].strip("<> ")
    assert unsubscribe.startswith("http://127.0.0.1:8000/u/") and len(unsubscribe) > 30
    assert f'href="{unsubscribe}"' in html
    assert "test-secret-for-render" not in html + (out / "email.txt").read_text(encoding="utf-8")


def test_render_as_unknown_subscriber_is_one_line(
    site: Path, tmp_path: Path, project_root: Path
) -> None:
    run(site, "subscribers", "import", str(project_root / "subscribers.example.csv"))
    code, _, stderr = run(
        site,
        "render",
        "--month",
        "2026-10",
        "--now",
        NOW,
        "--as",
        "nobody@example.com",
        "--out",
        str(tmp_path / "x"),
    )
    assert code == 2
    assert stderr.strip().splitlines() == [
        "error: --as: nobody@example.com is not a subscriber; `newsletter subscribers` lists them"
    ]


def test_bad_intro_file_is_one_line(site: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.md"
    code, _, stderr = run(
        site,
        "render",
        "--month",
        "2026-10",
        "--now",
        NOW,
        "--intro",
        str(missing),
        "--out",
        str(tmp_path / "x"),
    )
    assert code == 2
    assert (
        stderr.strip() == f"error: {missing}: intro file not found; pass an existing Markdown file"
    )


def test_intro_file_appears_in_digest(site: Path, tmp_path: Path) -> None:
    intro = tmp_path / "intro.md"
    intro.write_text("A **busy** month: see [the photos](/photos/).", encoding="utf-8")
    code, _, _ = run(
        site,
        "render",
        "--month",
        "2026-10",
        "--now",
        NOW,
        "--intro",
        str(intro),
        "--out",
        str(tmp_path / "x"),
    )
    assert code == 0
    html = (tmp_path / "x" / "email.html").read_text(encoding="utf-8")
    assert "<strong>busy</strong>" in html
    assert "https://northbay-pyconf.example.org/photos/?utm_source=newsletter" in html
    text = (tmp_path / "x" / "email.txt").read_text(encoding="utf-8")
    assert "A busy month" in text


def test_lint_exit_codes_and_json(site: Path, tmp_path: Path) -> None:
    code, stdout, _ = run(site, "lint", "--month", "2026-10", "--now", NOW, "--json")
    assert code == 0 and json.loads(stdout) == []
    broken = site.read_text(encoding="utf-8").replace(
        'postal_address = "NorthBay PyConf, 100 Harbour Way, Eureka, CA 95501, USA"',
        'postal_address = ""',
    )
    site.write_text(broken, encoding="utf-8")
    code, stdout, stderr = run(site, "lint", "--month", "2026-10", "--now", NOW, "--json")
    assert code == 3
    findings = json.loads(stdout)
    assert [(f["severity"], f["code"], f["source"]) for f in findings] == [
        ("error", "postal-address", "newsletter.toml")
    ]
    assert stderr.strip() == "error: lint found errors; fix them before sending"


def test_template_error_is_one_line(site: Path, tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "digest.mjml.j2").write_text(
        '{% extends "base.mjml.j2" %}\n{% block content %}{{ lead.nope }}{% endblock %}\n',
        encoding="utf-8",
    )
    code, _, stderr = run(
        site, "render", "--month", "2026-10", "--now", NOW, "--out", str(tmp_path)
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: digest.mjml.j2:2: ")
    assert "nope" in lines[0] and "Traceback" not in stderr


def test_render_commands_and_settings_are_documented(project_root: Path) -> None:
    from docs_helpers import docs_text

    readme = docs_text()
    for command in ("render", "lint", "preview"):
        assert f"newsletter {command} " in readme, f"`newsletter {command}` missing from README"
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output
    for setting in (
        "subject_digest",
        "subject_post",
        "intro",
        "preheader",
        "first_name_fallback",
        "inliner",
        "archive_url",
        "archive_dir",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "postal_address",
        "why",
        "templates",
    ):
        assert f"`{setting}`" in readme, f"[email] {setting} is not documented in README"
