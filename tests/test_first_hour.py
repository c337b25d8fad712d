"""The first hour of a new user, on a Jekyll-shaped site: init, doctor, fix, render, send,
archive.

Every step runs the real command on real files; the send goes through the SendGrid transport to
the recording fake on 127.0.0.1, and the test reads what the fake recorded.
"""

from __future__ import annotations

import email
import shutil
import sqlite3
from email import policy
from pathlib import Path

from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.providers.sendgrid.fake import Account, FaultPlan, serve_in_thread

KEY = "SG.first-hour-test-key-0123456789"
SECRET = "first-hour-secret-" + "x" * 30
NOW = "2026-11-01T09:00"
POSTS = {
    "2026-10-03-autumn-meetup.md": (
        "---\nlayout: post\ntitle: Autumn Meetup Recap\ncategories: [events]\n---\n"
        "Forty people came to the autumn meetup. Slides are on [the site]({{ site.baseurl }}/"
        "slides/).\n"
    ),
    "2026-10-19-new-release.md": (
        "---\nlayout: post\ntitle: Version 2.0 Is Out\n---\nThe new release is faster.\n"
    ),
    "2026-09-12-old-news.md": "---\nlayout: post\ntitle: Old News\n---\nSeptember.\n",
}


def jekyll_site(root: Path) -> Path:
    (root / "_posts").mkdir(parents=True)
    (root / "_config.yml").write_text(
        'title: "Ada\'s Notes"\nurl: "https://ada-notes.net"\nbaseurl: ""\n'
        "timezone: Europe/Paris\npermalink: /:year/:month/:title/\n",
        encoding="utf-8",
    )
    for name, text in POSTS.items():
        (root / "_posts" / name).write_text(text, encoding="utf-8")
    (root / "readers.csv").write_text(
        "email,first_name\nann@ada-notes.net,Ann\nbo@example.net,Bo\ncy@example.net,\n",
        encoding="utf-8",
    )
    return root


def test_the_first_hour(tmp_path: Path) -> None:
    site = jekyll_site(tmp_path / "ada-notes")
    runner = CliRunner()
    account = Account(authenticated_domains=("ada-notes.net",))
    with serve_in_thread(FaultPlan(), tmp_path / "fake.sqlite", account=account) as url:
        env = {"SENDGRID_API_KEY": KEY, "NEWSLETTER_SECRET": SECRET, "SENDGRID_API_URL": url}
        config = ["--config", str(site / "newsletter.toml")]

        def run(*args: str) -> Result:
            return runner.invoke(main, [*args, *config], env=env)

        # 1. init, with no sender given: the file gets the placeholder and says so
        init = runner.invoke(
            main,
            [
                "init",
                str(site),
                "--yes",
                "--postal-address",
                "Ada's Notes, 1 Rue Exemple, 75001 Paris",
                "--unsubscribe-url",
                "https://news.ada-notes.net",
            ],
        )
        assert init.exit_code == 0, init.output
        assert " doctor " in init.stdout and "placeholder" in init.output

        # 2. doctor fails on the placeholder sender, and only on it
        doctor = run("doctor")
        assert doctor.exit_code == 2, doctor.output
        failed = [line for line in doctor.output.splitlines() if line.startswith("fail")]
        assert len(failed) == 1 and "sender" in failed[0] and "placeholder" in failed[0]

        # 3. the fix doctor names: a sender on the authenticated domain
        settings = site / "newsletter.toml"
        text = settings.read_text(encoding="utf-8")
        assert 'from_email = "news@example.com"' in text
        settings.write_text(
            text.replace('"news@example.com"', '"news@ada-notes.net"'), encoding="utf-8"
        )
        fixed = run("doctor")
        assert fixed.exit_code == 0, fixed.output
        assert "ada-notes.net is an authenticated domain" in fixed.output

        # 4. render October's digest and look at it
        out = tmp_path / "build"
        render = run("render", "--month", "2026-10", "--now", NOW, "--out", str(out))
        assert render.exit_code == 0, render.output
        html = (out / "email.html").read_text(encoding="utf-8")
        assert "Autumn Meetup Recap" in html and "Version 2.0 Is Out" in html
        assert "Old News" not in html and "https://ada-notes.net/2026/10/" in html

        # 5. import readers and send through SendGrid (the recording fake)
        assert run("subscribers", "import", str(site / "readers.csv")).exit_code == 0
        send = run("send", "--month", "2026-10", "--now", NOW, "--yes", "--no-progress")
        assert send.exit_code == 0, send.output
        assert "3 accepted" in send.output
        again = run("send", "--month", "2026-10", "--now", NOW, "--yes", "--no-progress")
        assert again.exit_code == 0 and "already sent" in again.output
        # 6. the archive followed the send; `archive build` writes it again from the store
        archive = site / "archive"
        published = (archive / "index.html").read_text(encoding="utf-8")
        shutil.rmtree(archive)
        build = run("archive", "build")
        assert build.exit_code == 0, build.output
        assert (archive / "index.html").read_text(encoding="utf-8") == published
        assert "October 2026" in published
        (page,) = archive.glob("*/index.html")
        assert "Autumn Meetup Recap" in page.read_text(encoding="utf-8")
        feed = (archive / "feed.xml").read_text(encoding="utf-8")
        assert feed.count("<entry>") == 1 and "October 2026" in feed

    with sqlite3.connect(tmp_path / "fake.sqlite") as db:
        rows = db.execute("SELECT email, subject, list_unsubscribe FROM messages").fetchall()
    assert sorted(r[0] for r in rows) == ["ann@ada-notes.net", "bo@example.net", "cy@example.net"]
    assert {r[1] for r in rows} == {"Ada's Notes — October 2026"}
    assert all(r[2].startswith("<https://news.ada-notes.net/u/") for r in rows)
    eml = email.message_from_bytes((out / "email.eml").read_bytes(), policy=policy.default)
    assert eml["From"].addresses[0].addr_spec == "news@ada-notes.net"
    for result in (init, doctor, fixed, render, send):
        assert KEY not in result.output and SECRET not in result.output
