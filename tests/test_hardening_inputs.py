"""Issue 10 item 8 (CSV headers, header values): hostile inputs give one clear line or a
well-formed message, never a hang or a traceback."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from send_cli_helpers import SEND, make_site, run

from newsletter.mime import build_message
from newsletter.personalize import one_line, values_for

NOT_A_LIST = (
    "Is this the subscriber list? Its first line must name the columns (email, first_name, ...)"
)


def test_a_header_of_a_million_columns_is_refused_at_once(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    (site / "wide.csv").write_text(
        "email," + ",".join(f"c{i}" for i in range(1_000_000)) + "\na@x.org\n", encoding="utf-8"
    )
    out = run(site, "subscribers", "import", "wide.csv", check=False)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: wide.csv:1: the header line is longer than 1 MB. {NOT_A_LIST}"
    )


@pytest.mark.parametrize(("columns", "refused"), [(1000, False), (1001, True)])
def test_at_most_1000_columns(tmp_path: Path, columns: int, refused: bool) -> None:
    site = make_site(tmp_path)
    names = ["email", *(f"c{i}" for i in range(columns - 1))]
    (site / "cols.csv").write_text(",".join(names) + "\na@x.org\n", encoding="utf-8")
    out = run(site, "subscribers", "import", "cols.csv", check=False)
    if refused:
        assert out.returncode == 2
        assert out.stderr.strip() == (
            f"error: cols.csv:1: the header has 1,001 columns; at most 1,000 are allowed. "
            f"{NOT_A_LIST}"
        )
    else:
        assert out.returncode == 0, out.stderr


def test_duplicate_and_missing_columns_in_a_wide_header(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    names = [f"c{i}" for i in range(998)]
    (site / "dup.csv").write_text(",".join(["email", *names, "C5"]) + "\n", encoding="utf-8")
    out = run(site, "subscribers", "import", "dup.csv", check=False)
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "error: dup.csv:1: column 'c5' appears twice in the header",
    )
    (site / "none.csv").write_text(",".join(names) + "\n", encoding="utf-8")
    out = run(site, "subscribers", "import", "none.csv", check=False)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: none.csv:1: no 'email' column: the header has 'c0', 'c1', 'c2', 'c3', 'c4', "
        "'c5', 'c6', 'c7', 'c8', 'c9' and 988 more; name one column email"
    )


NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "name", ["Ann\u2028Lee", "Ann\u2029Lee", "Ann\r\nLee", "Ann\x0bLee", "Ann\x85Lee"]
)
def test_no_name_or_subject_breaks_a_message(name: str) -> None:
    msg = build_message(
        from_email="news@example.org",
        to="ann@bücher.de",
        to_name=name,
        subject=f"News for {name}\r\nBcc: all@example.org",
        html="<p>hi</p>",
        text="hi",
        now=NOW,
    )
    back = email.message_from_bytes(bytes(msg), policy=policy.default)
    assert str(back["To"]) == "Ann Lee <ann@xn--bcher-kva.de>"
    assert back["Subject"] == "News for Ann Lee Bcc: all@example.org"
    assert back["Bcc"] is None and not back.defects and not back["To"].defects


def test_one_line_keeps_what_is_printable() -> None:
    assert one_line("Zoë 👩‍👩‍👧") == "Zoë 👩‍👩‍👧"  # the zero-width joiners stay
    assert one_line("\u2028Ann\u2029\u2029Lee\n") == "Ann Lee"
    assert values_for("a@x.org", "\u2028", "u")["%%FIRST_NAME_TEXT%%"] == "there"


def test_a_personal_subject_with_a_line_separator_goes_through_the_outbox(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    toml = site / "newsletter.toml"
    toml.write_text(
        toml.read_text().replace(
            "[email]\n", '[email]\nsubject_digest = "News for {{ first_name }}"\n'
        )
    )
    (site / "odd.csv").write_text(
        "email,first_name\nann@bücher.de,Ann\u2028Lee\nbob@example.net,Bob\u2029\n",
        encoding="utf-8",
    )
    run(site, "subscribers", "import", "odd.csv")
    out = run(site, *SEND, "--transport", "outbox", check=False)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    messages = {}
    for eml in (site / "outbox").glob("*/*.eml"):
        msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert not msg.defects and not msg["To"].defects
        messages[msg["To"].addresses[0].addr_spec] = msg
    assert messages["ann@xn--bcher-kva.de"]["Subject"] == "News for Ann Lee"
    assert messages["bob@example.net"]["Subject"] == "News for Bob"
