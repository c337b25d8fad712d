"""``newsletter posts`` as a user runs it: real files in a temporary site, exact messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings
from newsletter.content import read_post
from newsletter.errors import PostError
from tests.posts_helpers import CONFIG, make_site, run

BAD_POSTS = {
    "bad-yaml": (
        "---\ntitle: Bad YAML\ndate: [2026-01-01\ntags: x\n---\nbody\n",
        "3: front matter is not valid YAML (did not find expected ',' or ']'); fix the syntax "
        "(quote values that contain ': ' or start with '[', '{', '@', '`')",
    ),
    "bad-toml": (
        '+++\ntitle = "Bad TOML"\ndate = \n+++\nbody\n',
        "3: front matter is not valid TOML (Empty value is invalid); fix the syntax",
    ),
    "no-title": (
        "---\ndate: 2026-01-01\n---\nbody\n",
        "1: no title; add 'title: ...' to the front matter",
    ),
    "no-date": (
        "---\ntitle: No date\n---\nbody\n",
        "2: no date; add 'date: 2026-03-01' to the front matter or prefix the file name "
        "with YYYY-MM-DD-",
    ),
    "bad-date": (
        "---\ntitle: Bad date\ndate: next tuesday\n---\nbody\n",
        "3: date 'next tuesday' is not a date; write it as 'date: 2026-03-01' or with a time, "
        "e.g. 'date: 2026-03-01T09:00:00-08:00'",
    ),
    "impossible-date": (
        "---\ntitle: Impossible\ndate: 2026-02-30\n---\nbody\n",
        "3: front matter has a value that cannot be read (day is out of range for month); "
        "fix it, e.g. the date",
    ),
    "not-utf8": (
        b"---\ntitle: Caf\xe9\ndate: 2026-01-01\n---\nbody\n",
        "2: file is not UTF-8 (byte 0xe9 at offset 14); re-save it as UTF-8",
    ),
    "no-front-matter": (
        "Just text.\n",
        "1: no front matter; start the file with a '---' block that sets at least title and date",
    ),
    "list-front-matter": (
        "---\n- a\n- b\n---\nbody\n",
        "2: front matter must be a mapping of keys to values (key: value), not a list",
    ),
    "unclosed": (
        "---\ntitle: never closed\ndate: 2026-01-01\nbody\n",
        "1: front matter opened with '---' is never closed; add a closing '---' line",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_POSTS))
def test_bad_post_is_reported_and_skipped(tmp_path: Path, case: str) -> None:
    text, message = BAD_POSTS[case]
    site = make_site(tmp_path, {f"{case}.md": text})
    path = site / "content" / f"{case}.md"
    result = run(site)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [f"error: {path}:{message}"]
    assert "Traceback" not in result.output
    *_, invalid_row, summary = result.stdout.splitlines()
    assert invalid_row.split() == ["-", f"{case}.md", "-", "invalid", "-"]
    assert summary == "1 post read; 1 selected; 1 could not be read and were skipped (see above)"


@pytest.mark.parametrize("case", sorted(BAD_POSTS))
def test_bad_post_is_fatal_with_strict(tmp_path: Path, case: str) -> None:
    text, message = BAD_POSTS[case]
    site = make_site(tmp_path, {f"{case}.md": text})
    path = site / "content" / f"{case}.md"
    result = run(site, "--strict")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {path}:{message}",
        "error: 1 post could not be read (listed above); fix them or run without --strict "
        "to skip them",
    ]
    assert result.stdout == ""


def test_broken_symlink_is_reported(tmp_path: Path) -> None:
    site = make_site(tmp_path, {})
    link = site / "content" / "gone.md"
    link.symlink_to(tmp_path / "missing.md")
    result = run(site)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"error: {link}: cannot read the file (No such file or directory); check that it "
        "exists and is readable"
    ]


def test_unreadable_path_raises_post_error(tmp_path: Path) -> None:
    # root can read a chmod 000 file, so use a path that no one can read as a file
    folder = tmp_path / "folder.md"
    folder.mkdir()
    with pytest.raises(PostError) as info:
        read_post(folder, Settings(root=tmp_path), root=tmp_path)
    assert info.value.format() == (
        f"{folder}: cannot read the file (Is a directory); check that it exists and is readable"
    )
    assert info.value.exit_code == 2


def test_template_warning_names_file_and_line(tmp_path: Path) -> None:
    text = "---\ntitle: T\ndate: 2026-01-02\n---\nLine one.\n\nHello {{ site.nope }}!\n"
    site = make_site(tmp_path, {"tpl.md": text})
    result = run(site)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"warning: {site / 'content' / 'tpl.md'}:7: removed template code {{{{ site.nope }}}} "
        "that cannot be resolved; add 'nope' under [site.values] in newsletter.toml"
    ]


FLAG_ERRORS = [
    (
        ["--since", "yesterday"],
        "error: --since: 'yesterday' is not a date; use YYYY-MM-DD or "
        "an ISO 8601 date-time such as 2026-11-01T09:00:00",
    ),
    (["--month", "2026-13"], "error: --month: '2026-13' is not a month; use YYYY-MM, e.g. 2026-10"),
    (
        ["--month", "2026-10", "--since", "2026-01-01"],
        "error: use only one of --since, --month; they each set the window's start",
    ),
    (
        ["--month", "2026-10", "--until", "2026-12-01"],
        "error: --month: --month already sets the end of the window; drop --until",
    ),
    (
        ["--since", "2026-05-01", "--until", "2026-04-01"],
        "error: the window is empty: --since/--days/--month starts after --until",
    ),
    (
        ["--post", "no-such-post"],
        "error: --post: no post matches 'no-such-post'; give a slug, "
        "file name or path that `newsletter posts` lists",
    ),
]


@pytest.mark.parametrize(("args", "line"), FLAG_ERRORS)
def test_bad_flags_exit_2_with_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    site = make_site(tmp_path, {})
    result = run(site, *args)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [line]


def test_a_picked_draft_or_future_post_names_the_flag_that_includes_it(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "wip.md": "---\ntitle: WIP\ndate: 2026-01-02\ndraft: true\n---\nx\n",
            "later.md": "---\ntitle: Later\ndate: 2027-06-01\n---\nx\n",
        },
    )
    for pick, line in (
        ("wip", "error: --post: the post 'wip' you picked is a draft; add --include-drafts"),
        ("later", "error: --post: the post 'later' you picked is dated in the future; add "
         "--include-future"),
    ):  # fmt: skip
        result = run(site, "--post", pick)
        assert result.exit_code == 2 and result.stderr.startswith(line), result.stderr
    assert run(site, "--post", "wip", "--include-drafts").exit_code == 0
    # slugs are matched whatever their case
    picked = run(site, "--post", "GOOD", "--json")
    assert [p["slug"] for p in json.loads(picked.stdout) if p["selected"]] == ["good"]


def test_missing_content_folder(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(CONFIG, "utf-8")
    result = run(tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'content'}: content folder not found; set [site] content in "
        "newsletter.toml or pass --content DIR"
    ]


def test_table_and_summary(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "2026-03-01-march.md": "---\ntitle: March news\ncategory: News\n---\nHi.\n",
            "_drafts/idea.md": "---\ntitle: An idea\ndate: 2026-03-02\n---\nLater.\n",
            "future.md": "---\ntitle: Next year\ndate: 2027-01-01\n---\nSoon.\n",
        },
    )
    result = run(site, "--month", "2026-03", "--include-future")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "date        title       category  status         sent in",
        "2027-01-01  Next year   -         after window   -",
        "2026-03-02  An idea     -         draft          -",
        "2026-03-01  March news  News      selected       -",
        "2026-01-01  Good        -         before window  -",
        "4 posts read; 1 selected; 3 left out (1 after window, 1 before window, 1 draft)",
    ]


def test_json_keys_and_order(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "2026-03-01-march.md": (
                "---\ntitle: March\nauthor: [A, B]\ntags: x, y\n"
                "cover:\n  url: /c.jpg\n  alt: C\n---\nHello *there*.\n"
            ),
            "draft.md": "---\ntitle: D\ndate: 2026-04-01\ndraft: true\n---\nx\n",
        },
    )
    result = run(site, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["slug"] for d in data] == ["draft", "march", "good"]
    assert data[1] == {
        "path": str(site / "content" / "2026-03-01-march.md"),
        "slug": "march",
        "title": "March",
        "date": "2026-03-01T00:00:00+00:00",
        "url": "https://example.org/2026/march/",
        "author": ["A", "B"],
        "categories": [],
        "tags": ["x", "y"],
        "cover": {"url": "https://example.org/c.jpg", "alt": "C"},
        "excerpt": "Hello there.",
        "draft": False,
        "selected": True,
        "reason": None,
        "reason_text": None,
        "sent_in": [],
    }
    assert (data[0]["selected"], data[0]["reason"], data[0]["draft"]) == (False, "draft", True)


def test_site_flags_override_the_config(tmp_path: Path) -> None:
    site = make_site(tmp_path, {})
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "2026-02-03-x.md").write_text("---\ntitle: X\n---\nx\n", "utf-8")
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(site / "newsletter.toml"),
            "--content",
            str(other),
            "--site-url",
            "https://other.example.net",
            "--permalink",
            "/p/:month/:day/:slug",
            "--timezone",
            "Asia/Tokyo",
            "posts",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    (item,) = json.loads(result.stdout)
    assert item["url"] == "https://other.example.net/p/02/03/x"
    assert item["date"] == "2026-02-03T00:00:00+09:00"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--timezone", "Mars/Base"], "error: --timezone: unknown time zone 'Mars/Base'"),
        (["--site-url", "ftp://x"], "error: --site-url: site URL 'ftp://x' must start with"),
    ],
)
def test_a_bad_flag_value_is_blamed_on_the_flag(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    site = make_site(tmp_path, {})
    result = CliRunner().invoke(main, ["--config", str(site / "newsletter.toml"), *flags, "posts"])
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert "newsletter.toml" not in result.stderr


def test_example_site_through_the_installed_command(project_root: Path) -> None:
    exe = Path(sys.executable).parent / "newsletter"
    proc = subprocess.run(
        [str(exe), "posts", "--json", "--now", "2026-11-26T12:00:00"],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = json.loads(proc.stdout)
    assert 10 <= len(data) <= 15
    dates = [d["date"] for d in data]
    assert dates == sorted(dates, key=datetime.fromisoformat, reverse=True)
    reasons = {d["slug"]: d["reason"] for d in data}
    assert reasons["save-the-date-2027"] == "future"
    assert reasons["community-grants"] == "draft"
    assert reasons["call-for-2027-organisers"] == "draft"
    assert all(d["url"].startswith("https://northbay-pyconf.example.org/news/") for d in data)
    assert all(d["excerpt"] for d in data)


def test_every_selection_flag_and_posts_option_is_documented(project_root: Path) -> None:
    from docs_helpers import docs_text

    readme = docs_text()
    command = main.commands["posts"]
    flags = [opt for param in command.params for opt in getattr(param, "opts", [])]
    assert "--json" in flags and "--since" in flags
    missing = [flag for flag in flags if f"`{flag}" not in readme and f" {flag}" not in readme]
    assert missing == []
    assert "newsletter posts" in readme


def test_since_last_issue_reads_the_store_after_a_real_send(tmp_path: Path) -> None:
    """Send October through the outbox, then `posts --since last-issue` starts after it."""
    site = make_site(
        tmp_path,
        {
            "2026-10-05-october.md": "---\ntitle: October\n---\nx\n",
            "2026-11-12-november.md": "---\ntitle: November\n---\ny\n",
        },
    )
    with (site / "newsletter.toml").open("a", encoding="utf-8") as config_file:
        config_file.write(
            '\n[email]\nfrom_email = "news@example.org"\n'
            'postal_address = "1 Test Street, Testville, CA 95501, USA"\n'
        )
    (site / "subs.csv").write_text("email,first_name\nreader@example.com,Rea\n", "utf-8")
    env = {**os.environ, "NEWSLETTER_SECRET": "test-secret-for-unsubscribe-links"}
    env.pop("SENDGRID_API_KEY", None)
    exe = str(Path(sys.executable).parent / "newsletter")
    config = ["--config", str(site / "newsletter.toml")]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *config, *args],
            cwd=site,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    before = cli("posts", "--since", "last-issue", "--now", "2026-11-26", "--json")
    assert before.returncode == 0, before.stderr
    assert "no digest has been sent yet" in before.stderr
    assert [d["selected"] for d in json.loads(before.stdout)] == [True, True, True]
    assert not (site / "newsletter.db").exists()  # listing never creates the store

    assert cli("subscribers", "import", "subs.csv").returncode == 0
    sent = cli(
        "send",
        "--month",
        "2026-10",
        "--now",
        "2026-11-26",
        "--transport",
        "outbox",
        "--yes",
        "--no-progress",
    )
    assert sent.returncode == 0, sent.stderr

    after = cli("posts", "--since", "last-issue", "--now", "2026-11-26", "--json")
    assert after.returncode == 0, after.stderr
    got = {d["slug"]: (d["reason"], d["sent_in"]) for d in json.loads(after.stdout)}
    (closing,) = [x for x in sent.stdout.splitlines() if x.startswith("campaign ")]
    october = closing.split()[1].rstrip(":")
    assert got == {
        "november": (None, []),
        "october": ("before_window", [october]),
        "good": ("before_window", []),
    }
