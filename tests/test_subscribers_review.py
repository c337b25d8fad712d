"""Import and ``subscribers remove`` problems found in review, each with its reproduction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import InputError
from newsletter.store import open_store
from newsletter.subscribers import Notice, import_subscribers

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_over_long_names_and_fields_are_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "email,first_name,last_name,company\n"
        f"ann@x.org,{'A' * 5000},Lee,ACME\n"
        f"bob@x.org,Bob,{'B' * 201},\n"
        f"cat@x.org,Cat,,{'C' * 1001}\n"
        f"dan@x.org,{'D' * 200},,{'E' * 1000}\n",
        encoding="utf-8",
    )
    notices: list[Notice] = []
    with open_store(tmp_path / "n.db") as store:
        report = import_subscribers(store.audience, path, now=NOW, on_notice=notices.append)
        assert (report.added, report.rejected) == (1, 3)
        assert [n.line for n in notices] == [2, 3, 4]
        assert notices[0].format().startswith(f"{path}:2: first_name is 5,000 characters long")
        assert "last_name is 201 characters" in notices[1].message
        assert "custom field 'company' is 1,001 characters" in notices[2].message
        assert store.audience.get_subscriber("ann@x.org") is None
        dan = store.audience.get_subscriber("dan@x.org")
        assert dan is not None and len(dan.first_name) == 200  # the limit itself is fine


def test_classic_mac_line_endings_get_an_actionable_message(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"email,first_name\rann@x.org,Ann\rbob@x.org,Bob\r")
    with open_store(tmp_path / "n.db") as store:
        with pytest.raises(InputError) as err:
            import_subscribers(store.audience, path, now=NOW)
        assert store.audience.stats().subscribers == 0
    assert err.value.format() == (
        f"{path}:1: the file uses old Mac line endings (CR only); re-save it with LF or CRLF "
        "line endings (e.g. 'CSV UTF-8' in Excel) and import again"
    )
    # CRLF files are unaffected
    path.write_bytes(b"email,first_name\r\nann@x.org,Ann\r\n")
    with open_store(tmp_path / "n.db") as store:
        assert import_subscribers(store.audience, path, now=NOW).added == 1


def test_remove_with_suppress_says_what_it_did_and_exit_code_agrees(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    (tmp_path / "newsletter.toml").write_text(f'[store]\npath = "{db}"\n')
    cfg = ["--config", str(tmp_path / "newsletter.toml")]
    runner = CliRunner()
    result = runner.invoke(main, [*cfg, "subscribers", "remove", "nobody@x.org", "--suppress"])
    assert result.exit_code == 0, result.output
    assert result.output == "nobody@x.org: no subscriber with this address; suppressed it\n"
    with open_store(db) as store:
        sup = store.audience.get_suppression("nobody@x.org")
        assert sup is not None and sup.reason == "manual"
    again = runner.invoke(main, [*cfg, "subscribers", "remove", "nobody@x.org", "--suppress"])
    assert again.exit_code == 0 and "it was already suppressed" in again.output
    plain = runner.invoke(main, [*cfg, "subscribers", "remove", "nobody@x.org"])
    assert plain.exit_code == 2
    assert "nobody@x.org: no subscriber with this address; nothing removed" in plain.output
    bad = runner.invoke(main, [*cfg, "subscribers", "remove", "not an address", "--suppress"])
    assert bad.exit_code == 2 and "not a valid email address" in bad.output
    with open_store(db) as store:
        assert store.audience.count_suppressions() == 1
