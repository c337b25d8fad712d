"""The preview server over HTTP: state, tabs' data, live reload on edits, errors on the page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from click.testing import CliRunner
from preview_helpers import copy_site, running_preview, wait_for

from newsletter.cli import main


def state(url: str, **params: str) -> dict[str, object]:
    data: dict[str, object] = httpx.get(url + "/api/state", params=params, timeout=10).json()
    return data


def test_preview_serves_email_tabs_and_reloads_on_edit(tmp_path: Path, project_root: Path) -> None:
    config = copy_site(project_root, tmp_path)
    with running_preview(config, "--month", "2026-10") as url:
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "Newsletter preview" in page.text
        assert httpx.get(url + "/assets/preview.js", timeout=10).status_code == 200
        first = state(url)
        assert first["error"] == ""
        assert first["subject"] == "NorthBay PyConf — October 2026"
        assert "Online”:\nhttps://northbay-pyconf.example.org/" in str(first["text"])
        headers = dict(first["headers"])  # type: ignore[arg-type]
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["To"] == "subscriber@example.com"
        assert first["findings"] == []
        email_html = httpx.get(url + "/email.html", timeout=10).text
        assert "All Talk Videos Are Online" in email_html and "Hi there," in email_html

        # saving a post re-renders without a restart
        post = tmp_path / "content" / "2026-10-21-talk-videos-online.md"
        post.write_text(
            post.read_text(encoding="utf-8").replace(
                "All Talk Videos Are Online", "Every Talk Is Now Online"
            ),
            encoding="utf-8",
        )
        version = first["version"]
        assert wait_for(lambda: state(url)["version"] != version)
        assert wait_for(lambda: "Every Talk Is Now Online" in httpx.get(url + "/email.html").text)

        # a broken template shows on the page, and the server keeps running
        (tmp_path / "templates" / "digest.mjml.j2").write_text(
            '{% extends "base.mjml.j2" %}\n{% block content %}\n{{ lead.missing }}\n'
            "{% endblock %}\n",
            encoding="utf-8",
        )
        assert wait_for(lambda: "digest.mjml.j2:3" in str(state(url)["error"]))
        broken = httpx.get(url + "/email.html", timeout=10).text
        assert "could not be rendered" in broken and "digest.mjml.j2:3" in broken
        (tmp_path / "templates" / "digest.mjml.j2").unlink()
        assert wait_for(lambda: state(url)["error"] == "")

        # editing newsletter.toml is picked up too
        config.write_text(
            config.read_text(encoding="utf-8").replace(
                'name = "NorthBay PyConf"', 'name = "NorthBay Python"'
            ),
            encoding="utf-8",
        )
        assert wait_for(lambda: state(url)["subject"] == "NorthBay Python — October 2026")

        # editors that save by writing a new file and renaming it over the old one, twice
        for name in ("NorthBay Snakes", "NorthBay Pythonistas"):
            text = config.read_text(encoding="utf-8")
            fresh = config.with_name("newsletter.toml.tmp")
            fresh.write_text(
                re.sub(r'^name = ".*"$', f'name = "{name}"', text, count=1, flags=re.M),
                encoding="utf-8",
            )
            os.replace(fresh, config)
            assert wait_for(lambda n=name: state(url)["subject"] == f"{n} — October 2026")


def test_preview_renders_as_a_subscriber(tmp_path: Path, project_root: Path) -> None:
    config = copy_site(project_root, tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "subscribers",
            "import",
            str(project_root / "subscribers.example.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    with running_preview(config, "--post", "2026-10-05-conference-wrap-up") as url:
        emails = httpx.get(url + "/api/subscribers", timeout=10).json()
        assert "ada.lovelace@example.com" in emails
        ada = state(url, **{"as": "ada.lovelace@example.com"})
        headers = dict(ada["headers"])  # type: ignore[arg-type]
        assert headers["To"] == "Ada Lovelace <ada.lovelace@example.com>"
        assert headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
        unknown = state(url, **{"as": "nobody@example.com"})
        assert "nobody@example.com is not a subscriber" in str(unknown["error"])
        assert state(url)["error"] == ""  # the server carries on
        # the subscriber list is not served to a page that reached us by another name
        rebound = httpx.get(url + "/api/subscribers", headers={"Host": "evil.example"}, timeout=10)
        assert rebound.status_code == 400 and "ada.lovelace" not in rebound.text
        named = httpx.get(url + "/", headers={"Host": "localhost"}, timeout=10)
        assert named.status_code == 200
