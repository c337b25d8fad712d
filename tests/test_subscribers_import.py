"""CSV import on real files and a real SQLite store: every rejection, merging, suppressions."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import InputError
from newsletter.store import Store, open_store
from newsletter.subscribers import ImportReport, Notice, export_subscribers, import_subscribers

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "n.db")
    yield s  # type: ignore[misc]
    s.close()


def run(store: Store, path: Path, **kw: object) -> tuple[ImportReport, list[Notice]]:
    notices: list[Notice] = []
    report = import_subscribers(store.audience, path, now=NOW, on_notice=notices.append, **kw)  # type: ignore[arg-type]
    return report, notices


def write(tmp_path: Path, text: str, name: str = "people.csv", encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_every_rejection_reason_is_reported_with_file_and_line(
    store: Store, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "email,first_name,last_name,tags,subscribed_at,company\n"
        "ann@example.org,Ann,Lee,news,2024-05-01,ACME\n"
        "not-an-address,Bob,,,,\n"
        ",NoMail,,,,\n"
        "carl@example.org,Carl,,,yesterday,\n"
        'dee@example.org,"Dee\nDee",,,,\n'
        "eve@example.org,Eve,,,,,extra\n"
        "frank@exa mple.org,Frank,,,,\n"
        "gina@example.org,Gina\n",
    )
    report, notices = run(store, path)
    got = [(n.line, n.message.split(" ")[0:2]) for n in notices]
    assert [n.line for n in notices] == [3, 4, 5, 6, 8, 9]
    msgs = {n.line: n.format() for n in notices}
    assert msgs[3].startswith(f"{path}:3: invalid email address 'not-an-address'")
    assert msgs[4] == f"{path}:4: no email address"
    assert "subscribed_at 'yesterday' is not a date" in msgs[5]
    assert "first_name contains a line break" in msgs[6]
    assert "7 fields, but the header has 6" in msgs[8]
    assert "invalid email address 'frank@exa mple.org'" in msgs[9]
    assert got  # every notice is a rejection
    assert all(n.kind == "rejected" for n in notices)
    assert (report.rows, report.added, report.rejected) == (8, 2, 6)
    ann = store.audience.get_subscriber("ANN@example.org")
    assert ann is not None
    assert (ann.first_name, ann.last_name, ann.tags) == ("Ann", "Lee", ("news",))
    assert ann.fields == {"company": "ACME"}
    assert ann.subscribed_at == "2024-05-01T00:00:00+00:00"
    gina = store.audience.get_subscriber("gina@example.org")
    assert gina is not None and gina.first_name == "Gina"  # short row: missing columns empty


def test_duplicates_merge_case_insensitively_and_counts_add_up(
    store: Store, tmp_path: Path
) -> None:
    first = write(
        tmp_path, "email,first_name,tags\nAnn@Example.ORG,Ann,a\nbob@x.org,Bob,\n", "1.csv"
    )
    report, _ = run(store, first, tags=["imported"])
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    ann = store.audience.get_subscriber("ann@example.org")
    assert ann is not None and ann.email == "Ann@example.org"  # domain lower-cased, local kept
    second = write(
        tmp_path,
        "email,first_name,last_name,tags\n"
        "ANN@example.org,,Lee,b\n"  # update: adds last name and tag b
        "bob@X.org,Bob,,\n"  # unchanged
        "ann@EXAMPLE.org,Annie,,\n"  # duplicate in the file: merged into the row above
        "cy@x.org,Cy,,\n",  # added
        "2.csv",
    )
    report, notices = run(store, second)
    assert notices == []
    r = report
    assert (r.added, r.updated, r.unchanged, r.duplicates, r.rows) == (1, 1, 1, 1, 4)
    ann = store.audience.get_subscriber("ann@example.org")
    assert ann is not None
    assert (ann.email, ann.first_name, ann.last_name) == ("Ann@example.org", "Annie", "Lee")
    assert ann.tags == ("a", "b", "imported")
    assert store.audience.count_recipients() == 3


def test_duplicates_across_chunks_are_found(store: Store, tmp_path: Path) -> None:
    lines = ["email,tags"] + [f"u{i}@x.org,t{i % 3}" for i in range(50)] + ["U7@x.org,late"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    report, _ = run(store, path, chunk_rows=10)
    assert (report.added, report.duplicates) == (50, 1)
    u7 = store.audience.get_subscriber("u7@x.org")
    assert u7 is not None and set(u7.tags) == {"t1", "late"}


def test_a_suppressed_address_is_never_resubscribed(store: Store, tmp_path: Path) -> None:
    store.audience.suppress("gone@x.org", reason="unsubscribed", source="t", now=NOW)
    path = write(tmp_path, "email\nGONE@x.org\nnew@x.org\n")
    report, notices = run(store, path)
    assert (report.added, report.suppressed) == (1, 1)
    assert [(n.line, n.kind) for n in notices] == [(2, "suppressed")]
    assert store.audience.get_subscriber("gone@x.org") is None
    assert [r.email for r in store.audience.iter_recipients()] == ["new@x.org"]


def test_dry_run_writes_nothing(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email\na@x.org\nb@x.org\nbad\n")
    report, _notices = run(store, path, dry_run=True)
    assert (report.added, report.rejected) == (2, 1)
    assert store.audience.stats().subscribers == 0


def test_utf8_bom_is_ignored_with_a_note(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(codecs.BOM_UTF8 + "email,first_name\nzoë@x.org,Zoë\n".encode())
    report, _notices = run(store, path)
    assert report.added == 1 and report.had_bom
    assert "byte-order mark" in report.notes[0]
    assert store.audience.get_subscriber("zoë@x.org").first_name == "Zoë"  # type: ignore[union-attr]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_gets_a_clear_message(store: Store, tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, "email\na@x.org\n", encoding=encoding)
    with pytest.raises(InputError) as err:
        run(store, path)
    assert err.value.format().startswith(f"{path}:1: ")
    assert "UTF-16" in err.value.format() and "CSV UTF-8" in err.value.format()


def test_wrong_encoding_rows_are_rejected_and_encoding_flag_fixes_them(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path, "email,first_name\nana@x.org,Ana\njose@x.org,José\n", encoding="cp1252")
    report, notices = run(store, path)
    assert report.added == 1 and report.rejected == 1
    assert notices[0].line == 3
    assert "not valid utf-8" in notices[0].message and "--encoding cp1252" in notices[0].message
    report, notices = run(store, path, encoding="cp1252")
    assert notices == [] and report.added == 1
    assert store.audience.get_subscriber("jose@x.org").first_name == "José"  # type: ignore[union-attr]


def test_bad_header_encoding_stops_before_anything(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "émail\na@x.org\n", encoding="cp1252")
    with pytest.raises(InputError, match=r"not valid utf-8") as err:
        run(store, path)
    assert err.value.format().startswith(f"{path}:1: not valid utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("name,first_name\nx,y\n", "no 'email' column: the header has 'name', 'first_name'"),
        ("a@x.org,Ann\n", "the first row looks like data"),
        ("email;first_name\na@x.org;Ann\n", "pass --delimiter ';'"),
        ("email,Email\na,b\n", "appears twice"),
    ],
)
def test_header_problems(store: Store, tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message):
        run(store, path)


def test_semicolon_files_work_with_delimiter(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email;first_name\na@x.org;Ann\n")
    report, _ = run(store, path, delimiter=";")
    assert report.added == 1


def test_export_round_trips_through_import(store: Store, tmp_path: Path) -> None:
    src = write(
        tmp_path,
        'email,first_name,last_name,tags,company\na@x.org,Ann,"Lee, Jr.",x;y,ACME\nb@x.org,B,,,\n',
    )
    run(store, src)
    store.audience.suppress("b@x.org", reason="bounced", source="t", now=NOW)
    buf = io.StringIO()
    assert export_subscribers(store.audience, buf, include_suppressed=False) == 1
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["last_name"] == "Lee, Jr." and rows[0]["company"] == "ACME"
    assert rows[0]["tags"] == "x;y"
    buf = io.StringIO()
    assert export_subscribers(store.audience, buf, include_suppressed=True) == 2
    assert list(csv.DictReader(io.StringIO(buf.getvalue())))[1]["suppressed"] == "bounced"
    with open_store(tmp_path / "other.db") as other:
        back = tmp_path / "back.csv"
        back.write_text(buf.getvalue(), encoding="utf-8")
        import_subscribers(other.audience, back, now=NOW)
        a = other.audience.get_subscriber("a@x.org")
        assert a is not None and a.fields["company"] == "ACME" and a.tags == ("x", "y")


def test_cli_import_prints_rejections_and_exits_nonzero(tmp_path: Path) -> None:
    path = write(tmp_path, "email\na@x.org\nnope\n")
    db = tmp_path / "cli.db"
    (tmp_path / "newsletter.toml").write_text(f'[store]\npath = "{db}"\n')
    runner = CliRunner()
    cfg = ["--config", str(tmp_path / "newsletter.toml")]
    result = runner.invoke(main, [*cfg, "subscribers", "import", str(path), "--tag", "t"])
    assert result.exit_code == 1
    assert f"{path}:3: invalid email address 'nope'" in result.output
    assert "1 added" in result.output and "1 rejected" in result.output
    result = runner.invoke(main, [*cfg, "subscribers", "list", "--jsonl"])
    assert '"email": "a@x.org"' in result.output and '"tags": ["t"]' in result.output
    result = runner.invoke(main, [*cfg, "subscribers", "import", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "missing.csv: cannot read the file" in result.output
    assert "Traceback" not in result.output


def test_fast_address_check_agrees_with_email_validator() -> None:
    import random

    from email_validator import EmailNotValidError, validate_email

    from newsletter.subscribers import normalise_email

    rng = random.Random(7)
    pieces = [
        "ann", "Bob", ".", "..", "-", "_", "+tag", "@", "@@", " ", '"', "é", "Ω", "x" * 70,
        "example.org", "EXAMPLE.COM", "-bad.com", "xn--bcher-kva.ch", "bücher.de", "localhost",
        "[1.2.3.4]", "a.b.c.d", ".com", "org.", "!#$%&'*/=?^`{|}~", "\\", ",", "(c)", "\u200b",
    ]  # fmt: skip
    for _ in range(4000):
        local = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 4)))
        domain = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 3)))
        addr = rng.choice([f"{local}@{domain}", f"{local}@example.org", f"ann@{domain}", local])
        try:
            want: str = validate_email(addr, check_deliverability=False).normalized
        except EmailNotValidError as err:
            want = f"error: {err}"
        try:
            got = normalise_email(addr)
        except EmailNotValidError as err:
            got = f"error: {err}"
        assert got == want, addr
