"""``newsletter init``: detects the site, asks for the rest, writes settings that load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings
from newsletter.config import load_settings as load_file
from newsletter.content import apply_generator_defaults
from newsletter.site_setup import detect_site, is_placeholder_address

POST = "---\ntitle: Hello {n}\ndate: 2026-10-0{n}\n---\nHi there, post {n}.\n"


def jekyll_site(root: Path) -> Path:
    (root / "_posts").mkdir(parents=True)
    (root / "_config.yml").write_text(
        'title: "Ada\'s Notes"\nurl: "https://ada.example.net"\nbaseurl: "/blog"\n'
        "timezone: Europe/Berlin\npermalink: pretty\nlang: de\n",
        encoding="utf-8",
    )
    for n in (1, 2):
        (root / "_posts" / f"2026-10-0{n}-hello-{n}.md").write_text(
            POST.format(n=n), encoding="utf-8"
        )
    return root


def load_settings(path: Path) -> Settings:
    """The settings every command sees: the file, then the generator's defaults."""
    return apply_generator_defaults(load_file(path))


def test_a_jekyll_site_is_detected(tmp_path: Path) -> None:
    found = detect_site(jekyll_site(tmp_path))
    assert found.generator == "jekyll"
    assert found.url == "https://ada.example.net/blog"
    assert found.name == "Ada's Notes" and found.timezone == "Europe/Berlin"
    assert found.permalink == "/:categories/:year/:month/:day/:title/"
    assert found.content == ("_posts",) and found.language == "de"


def test_hugo_eleventy_and_plain_folders_are_detected(tmp_path: Path) -> None:
    hugo = tmp_path / "hugo"
    (hugo / "content" / "posts").mkdir(parents=True)
    (hugo / "content" / "posts" / "a.md").write_text(POST.format(n=1), encoding="utf-8")
    (hugo / "hugo.toml").write_text(
        'baseURL = "https://hugo.example.net/"\ntitle = "H"\ntimeZone = "Asia/Tokyo"\n'
        'languageCode = "en-us"\n',
        encoding="utf-8",
    )
    found = detect_site(hugo)
    assert (found.generator, found.url, found.timezone) == (
        "hugo",
        "https://hugo.example.net",
        "Asia/Tokyo",
    )
    assert found.content == ("content/posts",) and found.language == "en"

    eleventy = tmp_path / "eleventy"
    (eleventy / "src" / "posts").mkdir(parents=True)
    (eleventy / "src" / "posts" / "a.md").write_text(POST.format(n=1), encoding="utf-8")
    (eleventy / "_data").mkdir()
    (eleventy / "_data" / "site.json").write_text('{"url": "https://e.example.net/"}', "utf-8")
    (eleventy / "eleventy.config.js").write_text("module.exports = {};\n", encoding="utf-8")
    found = detect_site(eleventy)
    assert (found.generator, found.url) == ("eleventy", "https://e.example.net")
    assert found.content  # the generator's input folder (here the site root)

    plain = tmp_path / "plain"
    (plain / "blog").mkdir(parents=True)
    (plain / "blog" / "a.md").write_text(POST.format(n=1), encoding="utf-8")
    assert detect_site(plain).content == ("blog",) and detect_site(plain).generator == ""
    (plain / "_config.yml").write_text("title: [unclosed\n", encoding="utf-8")
    assert detect_site(plain).generator == "jekyll"  # a broken config only means "not found"


def test_init_yes_writes_settings_that_load(tmp_path: Path) -> None:
    site = jekyll_site(tmp_path / "site")
    (site / ".git").mkdir()
    (site / ".gitignore").write_text("_site", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "init",
            str(site),
            "--yes",
            "--from-email",
            "news@ada-notes.net",
            "--postal-address",
            "Ada's Notes, 1 Rue Exemple, Paris",
            "--unsubscribe-url",
            "https://news.ada-notes.net/",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "doctor" in result.stdout and "Jekyll site (_config.yml)" in result.output
    assert "posts --month 2026-10 " in result.stdout  # the month of the newest post
    settings = load_settings(site / "newsletter.toml")
    assert settings.site.url == "https://ada.example.net/blog"
    assert settings.site.name == "Ada's Notes" and settings.site.timezone == "Europe/Berlin"
    assert settings.site.content == ("_posts",) and settings.site.language == "de"
    assert settings.email.from_email == "news@ada-notes.net"
    assert settings.email.from_name == "Ada's Notes"
    assert settings.email.postal_address == "Ada's Notes, 1 Rue Exemple, Paris"
    assert settings.unsubscribe.base_url == "https://news.ada-notes.net"
    text = (site / "newsletter.toml").read_text(encoding="utf-8")
    assert "(from _config.yml)" in text and "PLACEHOLDER" not in text
    env = (site / ".env.example").read_text(encoding="utf-8")
    assert "SENDGRID_API_KEY=\n" in env and "NEWSLETTER_SECRET=\n" in env
    ignored = (site / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ignored[0] == "_site" and {".env", "newsletter.db*", "outbox/"} <= set(ignored)
    posts = CliRunner().invoke(main, ["--config", str(site / "newsletter.toml"), "posts"])
    assert posts.exit_code == 0 and "2 posts read" in posts.output


def test_init_keeps_an_existing_file_unless_forced(tmp_path: Path) -> None:
    site = jekyll_site(tmp_path)
    (site / "newsletter.toml").write_text("# mine\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["init", str(site), "--yes"])
    assert result.exit_code == 2 and "--force" in result.output
    assert (site / "newsletter.toml").read_text(encoding="utf-8") == "# mine\n"
    forced = CliRunner().invoke(main, ["init", str(site), "--yes", "--force", "--templates"])
    assert forced.exit_code == 0, forced.output
    settings = load_settings(site / "newsletter.toml")
    assert is_placeholder_address(settings.email.from_email)
    assert "placeholder" in forced.output
    assert (site / "templates" / "digest.mjml.j2").is_file()
    assert (site / "templates" / "partials").is_dir()


def test_without_a_terminal_or_yes_it_names_what_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["init", str(empty)])
    assert result.exit_code == 2
    assert "--site-url" in result.output and "--content" in result.output
    assert "Traceback" not in result.output and not (empty / "newsletter.toml").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--site-url", "blog.example.net"], "--site-url"),
        (["--from-email", "not-an-address"], "--from-email"),
        (["--unsubscribe-url", "http://news.ada-notes.net"], "https URL"),
        (["--timezone", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_bad_answers_are_refused_with_the_flag(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    site = jekyll_site(tmp_path)
    result = CliRunner().invoke(main, ["init", str(site), "--yes", *flags])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output
    assert not (site / "newsletter.toml").exists()


def test_on_a_terminal_it_asks_and_offers_what_it_found(tmp_path: Path) -> None:
    """Run in a pseudo-terminal: Enter takes the detected value, typed answers are used."""
    site = jekyll_site(tmp_path / "site")
    master, slave = os.openpty()
    answers = [
        "",  # site name: take "Ada's Notes"
        "",  # URL: take the detected one
        "",  # posts folder
        "",  # time zone
        "hello@ada-notes.net",
        "Ada",
        "1 Rue Exemple, Paris",
        "",  # unsubscribe URL: later
    ]
    os.write(master, ("\n".join(answers) + "\n").encode())
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "init", str(site)],
        stdin=slave,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(master)
    os.close(slave)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Site URL (https://...) [https://ada.example.net/blog]" in done.stdout
    settings = load_settings(site / "newsletter.toml")
    assert settings.site.url == "https://ada.example.net/blog"
    assert settings.email.from_email == "hello@ada-notes.net"
    assert settings.email.from_name == "Ada" and settings.unsubscribe.base_url.startswith("http://")
    assert settings.email.postal_address == "1 Rue Exemple, Paris"


def test_posts_outside_the_generators_folder_are_written_down(tmp_path: Path) -> None:
    """Jekyll says _posts; the posts are in blog/: the file names blog/, the rest stays left."""
    site = tmp_path / "site"
    (site / "blog").mkdir(parents=True)
    (site / "blog" / "2026-10-01-a.md").write_text(POST.format(n=1), encoding="utf-8")
    (site / "_config.yml").write_text('url: "https://ada.example.net"\n', encoding="utf-8")
    found = detect_site(site)
    assert found.content == ("blog",) and "content" not in found.from_generator
    assert "url" in found.from_generator
    result = CliRunner().invoke(main, ["init", str(site), "--yes"])
    assert result.exit_code == 0, result.output
    text = (site / "newsletter.toml").read_text(encoding="utf-8")
    assert '\ncontent = ["blog"]' in text and '\n# url = "https://ada.example.net"' in text
    settings = load_settings(site / "newsletter.toml")
    assert settings.site.content == ("blog",) and settings.site.url == "https://ada.example.net"
