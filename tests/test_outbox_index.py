"""The outbox index: decoded subjects and names, an inbox-like table, links that open."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.transports.outbox import read_entry, write_index

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = (
    "email,first_name,last_name\n"
    "zoe@example.net,Zoë,Müller\n"
    'mallory@example.net,<b>Mal</b>,"O\'Brien & Co"\n'
    "plain@example.net,,\n"
)


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    shutil.copytree(ROOT / "content", site / "content")
    shutil.copy(ROOT / "newsletter.toml", site / "newsletter.toml")
    (site / "people.csv").write_text(PEOPLE, encoding="utf-8")
    monkeypatch.chdir(site)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["subscribers", "import", "people.csv"]).exit_code == 0
    send = ["send", "--month", "2026-10", "--now", "2026-11-01T09:00", "--transport", "outbox"]
    sent = runner.invoke(main, [*send, "--yes", "--no-progress"])
    assert sent.exit_code == 0, sent.output
    (folder,) = (site / "outbox").iterdir()
    return folder


def test_subjects_and_names_are_decoded_and_escaped(outbox: Path) -> None:
    raw = b"".join(p.read_bytes() for p in outbox.glob("*.eml"))
    assert b"=?utf-8?" in raw  # the subject's em dash is an encoded word in the file ...
    page = (outbox / "index.html").read_text(encoding="utf-8")
    assert "=?utf-8?" not in page  # ... and text in the index
    assert page.count("NorthBay PyConf — October 2026") == 4  # the title and 3 rows
    assert "zoe@example.net" in page and "mallory@example.net" in page
    assert (
        "2026-11-01" in page and "NorthBay PyConf &lt;news@northbay-pyconf.example.org&gt;" in page
    )


def test_every_row_links_to_files_that_exist(outbox: Path) -> None:
    page = (outbox / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)"', page)
    emls = sorted(outbox.glob("*.eml"))
    assert len(emls) == 3
    assert {unquote(link) for link in links if link.endswith(".eml")} == {e.name for e in emls}
    for link in links:
        assert (outbox / unquote(link)).is_file(), link


def test_an_entry_reads_folded_and_encoded_headers(tmp_path: Path) -> None:
    eml = tmp_path / "00000-0000-x.eml"
    eml.write_bytes(
        b"From: =?utf-8?q?Caf=C3=A9?= <a@b.org>\r\n"
        b"To: =?utf-8?b?Wm/Dqw==?= <zoe@example.net>\r\n"
        b"Subject: =?utf-8?q?A_long_subject_that_was?=\r\n =?utf-8?q?_folded_=E2=80=94_twice?=\r\n"
        b"Date: Sun, 01 Nov 2026 09:00:00 -0800\r\n\r\nbody with Subject: nothing\r\n"
    )
    entry = read_entry(eml)
    assert entry.subject == "A long subject that was folded — twice"
    assert (entry.to_name, entry.to_addr) == ("Zoë", "zoe@example.net")
    assert entry.sender == "Café <a@b.org>" and entry.date == "2026-11-01 09:00"
    assert "A long subject that was folded — twice" in write_index(tmp_path).read_text("utf-8")
    (tmp_path / "00000-0001-y.eml").write_bytes(
        b'To: "<script>alert(1)</script>" <y@example.net>\r\nSubject: <b>hi</b>\r\n\r\n'
    )
    page = write_index(tmp_path).read_text("utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>hi</b>" not in page and "&lt;b&gt;hi&lt;/b&gt;" in page
