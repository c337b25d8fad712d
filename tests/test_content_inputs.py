"""Files in a content folder that are not posts (FIFOs, sockets, symlink loops), style attributes
that run code, and which warnings a command prints. Real files, exact messages."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from click.testing import Result

from newsletter.content.markdown import markdown_to_email_html, sanitize
from tests.posts_helpers import GOOD, make_site, run


def _in_thread(target: object, *args: object) -> Result:
    """Run the command in a thread and fail (instead of hanging) if it does not finish."""
    box: list[Result] = []
    thread = threading.Thread(target=lambda: box.append(target(*args)), daemon=True)  # type: ignore[operator]
    thread.start()
    thread.join(timeout=20)
    assert box, "newsletter posts hung"
    return box[0]


def test_fifo_named_like_a_post_is_skipped_with_a_message(tmp_path: Path) -> None:
    site = make_site(tmp_path, {})
    fifo = site / "content" / "x.md"
    os.mkfifo(fifo)
    result = _in_thread(run, site)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"warning: {fifo}: skipped: a FIFO (named pipe) is not a post file; move it out of the "
        "content folder"
    ]
    assert result.stdout.splitlines()[-1] == "1 post read; 1 selected"


def test_socket_named_like_a_post_is_skipped_with_a_message(tmp_path: Path) -> None:
    site = make_site(tmp_path, {})
    path = site / "content" / "s.md"
    if len(str(path)) > 100:  # AF_UNIX paths are short; bind from inside the folder
        pytest.skip("temporary path too long for a unix socket")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        result = _in_thread(run, site)
    finally:
        server.close()
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"warning: {path}: skipped: a socket is not a post file; move it out of the content folder"
    ]


def test_device_named_like_a_post_is_skipped(tmp_path: Path) -> None:
    site = make_site(tmp_path, {})
    link = site / "content" / "null.md"
    link.symlink_to("/dev/null")  # a symlink to a device is still not a file
    result = _in_thread(run, site)
    assert result.stderr.splitlines() == [
        f"warning: {link}: skipped: a character device is not a post file; move it out of the "
        "content folder"
    ]


def test_symlink_loop_is_not_followed(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"sub/inner.md": GOOD.replace("Good", "Inner")})
    content = site / "content"
    loop = content / "sub" / "again"
    loop.symlink_to(content, target_is_directory=True)
    self_loop = content / "self"
    self_loop.symlink_to(".", target_is_directory=True)
    result = _in_thread(run, site)
    assert result.exit_code == 0
    real = os.path.realpath(content)
    assert result.stderr.splitlines() == [
        f"warning: {self_loop}: skipped: symlink loop (it leads back to {real}, which contains "
        "it); not followed",
        f"warning: {loop}: skipped: symlink loop (it leads back to {real}, which contains it); "
        "not followed",
    ]
    assert result.stdout.splitlines()[-1] == "2 posts read; 2 selected"


def test_symlink_to_a_folder_outside_is_followed(tmp_path: Path) -> None:
    site = make_site(tmp_path, {})
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "2026-02-01-shared.md").write_text("---\ntitle: Shared\n---\nx\n", "utf-8")
    (site / "content" / "shared").symlink_to(shared, target_is_directory=True)
    result = run(site)
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == "2 posts read; 2 selected"


@pytest.mark.parametrize(
    "style",
    [
        "width: expression(alert(1))",
        "WIDTH: EXPRESSION(alert(1))",
        r"width: expr\65 ssion(alert(1))",
        "width: ex/**/pression(alert(1))",
        "behavior: url(evil.htc)",
        "-moz-binding: url(https://evil.example/x.xml#xss)",
        "background-color: url(javascript:alert(1))",
    ],
)
def test_styles_that_run_code_are_removed(style: str) -> None:
    markup = f'<p style="color: red; {style}; text-align: center">Hi</p>'
    assert sanitize(markup, "https://example.org/") == (
        '<p style="color:red;text-align:center">Hi</p>'
    )


def test_a_style_with_only_code_disappears() -> None:
    html = markdown_to_email_html(
        '<div style="width: expression(alert(1))">Hi</div>', "https://example.org/"
    )
    assert html == "<div>Hi</div>"


NOISY = "---\ntitle: {title}\ndate: {date}\n---\nSee {{{{ site.missing }}}} here.\n"


def test_warnings_only_for_selected_posts_and_a_count_for_the_rest(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "old-1.md": NOISY.format(title="Old one", date="2013-01-01"),
            "old-2.md": NOISY.format(title="Old two", date="2014-01-01"),
            "new.md": NOISY.format(title="New", date="2026-10-03"),
        },
        good=False,
    )
    new = site / "content" / "new.md"
    result = run(site, "--month", "2026-10")
    assert result.exit_code == 0
    message = (
        "removed template code {{ site.missing }} that cannot be resolved; add 'missing' under "
        "[site.values] in newsletter.toml"
    )
    assert result.stderr.splitlines() == [
        f"warning: {new}:5: {message}",
        "note: 2 warnings about 2 posts not selected; `newsletter posts --warnings` lists them",
    ]
    everything = run(site, "--month", "2026-10", "--warnings")
    assert [line.split(":")[0] for line in everything.stderr.splitlines()] == ["warning"] * 3


def test_posts_selected_lists_only_the_issue(tmp_path: Path) -> None:
    site = make_site(
        tmp_path,
        {
            "old.md": "---\ntitle: Old\ndate: 2013-01-01\n---\nx\n",
            "new.md": "---\ntitle: New\ndate: 2026-10-03\n---\nx\n",
        },
        good=False,
    )
    result = run(site, "--month", "2026-10", "--selected")
    rows = result.stdout.splitlines()
    assert rows[1].split() == ["2026-10-03", "New", "-", "selected", "-"]
    assert len(rows) == 3  # header, the one post, summary
    assert rows[-1] == "2 posts read; 1 selected; 1 left out (1 before window)"
