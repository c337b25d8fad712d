"""The audience commands as a user runs them (click's runner, a real store in a temp dir)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "newsletter.toml").write_text(f'[store]\npath = "{tmp_path / "n.db"}"\n')
    runner = CliRunner()
    cfg = ["--config", str(tmp_path / "newsletter.toml")]

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, [*cfg, *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    people = tmp_path / "people.csv"
    people.write_text(
        "email,first_name,last_name,tags,city\n"
        "ann@x.org,Ann,Lee,news;events,Oslo\n"
        "bob@x.org,Bob,,news,\n"
        "cy@x.org,Cy,,,Rome\n",
        encoding="utf-8",
    )
    run("subscribers", "import", str(people))
    return run, tmp_path


def test_list_stats_and_json(cli) -> None:  # type: ignore[no-untyped-def]
    run, _ = cli
    rows = json.loads(run("subscribers", "list", "--json"))
    assert [r["email"] for r in rows] == ["ann@x.org", "bob@x.org", "cy@x.org"]
    lines = [json.loads(line) for line in run("subscribers", "list", "--jsonl").splitlines()]
    assert lines == rows
    assert rows[0]["fields"] == {"city": "Oslo"} and rows[0]["tags"] == ["events", "news"]
    assert run("subscribers", "list", "--tag", "events").startswith("ann@x.org\tAnn Lee\t")
    run("suppressions", "add", "bob@x.org", "--reason", "bounced")
    out = run("subscribers", "stats")
    assert "subscribers: 3" in out and "active (will be mailed): 2" in out
    assert "  bounced: 1" in out and "  news: 1" in out
    assert "bob@x.org\tBob\tnews\tsuppressed: bounced" in run("subscribers", "list")
    assert "bob@x.org" not in run("subscribers", "list", "--active")


def test_export_to_file_and_stdout(cli) -> None:  # type: ignore[no-untyped-def]
    run, tmp = cli
    run("suppressions", "add", "cy@x.org")
    out = run("subscribers", "export", str(tmp / "out.csv"))
    assert "2 subscribers written" in out
    rows = list(csv.DictReader(io.StringIO((tmp / "out.csv").read_text(encoding="utf-8"))))
    assert [r["email"] for r in rows] == ["ann@x.org", "bob@x.org"]
    every = list(
        csv.DictReader(io.StringIO(run("subscribers", "export", "-", "--include-suppressed")))
    )
    assert [r["suppressed"] for r in every] == ["", "", "manual"]


def test_remove_and_suppressions_add_remove(cli) -> None:  # type: ignore[no-untyped-def]
    run, _ = cli
    assert "removed ann@x.org and suppressed it" in run(
        "subscribers", "remove", "ann@x.org", "--suppress"
    )
    assert "error: nobody@x.org: no subscriber" in run(
        "subscribers", "remove", "nobody@x.org", code=2
    )
    listed = run("suppressions", "list")
    assert listed.startswith("ann@x.org\tmanual\tcli\t")
    assert "1 suppressed, 1 already were" in run("suppressions", "add", "new@x.org", "ann@x.org")
    assert "error: bad: not a valid email address" in run("suppressions", "add", "bad", code=2)
    out = run("suppressions", "remove", "new@x.org", "zzz@x.org", code=1)
    assert "new@x.org: no longer suppressed" in out and "zzz@x.org: was not suppressed" in out
    assert run("suppressions", "list", "--reason", "bounced") == ""


def test_import_dry_run_and_flags(cli) -> None:  # type: ignore[no-untyped-def]
    run, tmp = cli
    semi = tmp / "semi.csv"
    semi.write_text("email;first_name\ndee@x.org;Dee\n", encoding="utf-8")
    out = run("subscribers", "import", str(semi), "--delimiter", ";", "--dry-run")
    assert "1 would be added" in out and "dry run: nothing written" in out
    assert "dee@x.org" not in run("subscribers", "list")
    assert "--delimiter must be one character" in run(
        "subscribers", "import", str(semi), "--delimiter", ";;", code=2
    )
    assert "unknown encoding 'klingon'" in run(
        "subscribers", "import", str(semi), "--encoding", "klingon", code=2
    )
