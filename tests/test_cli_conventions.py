"""One output convention: every help example runs on the example site; flags, -h, JSON, colour."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-01T09:00"

#: long-running servers: their examples are parsed (every flag and value checked), not run
SERVERS = {("serve",), ("preview",)}
#: examples whose right answer on the example site is not 0: it is not set up for a real send
EXIT = {"newsletter doctor": 2}
#: commands that act on a campaign: the id in their help is a placeholder, so each example runs
#: on a campaign made first in the state it is for (see `prepare_campaign`)
CAMPAIGN_ID = "2026-10-3f9a2c1b7e"
ON_A_CAMPAIGN = {("resume",), ("status",), ("cancel",), ("campaigns",)}
#: what an operator who sends through SendGrid has exported
SENDGRID_ENV = {"SENDGRID_API_KEY": "SG.examples-test", "NEWSLETTER_SECRET": "s" * 40}


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


def examples(command: click.Command) -> list[str]:
    """The lines under ``Example:`` / ``Examples:`` in a command's help, comments removed."""
    found: list[str] = []
    taking = False
    for line in (command.help or "").splitlines():
        text = line.strip()
        if re.fullmatch(r"Examples?:", text):
            taking = True
            continue
        if taking and not text:
            taking = False
        if taking and "newsletter" in text:
            found.append(re.sub(r"\s+#.*$", "", text))
    return found


ALL = [(path, line) for path, cmd in walk(main) for line in examples(cmd)]


def prepare_campaign(path: tuple[str, ...], runner: CliRunner, env: dict[str, str]) -> str:
    """A campaign in the state ``path``'s examples are for; returns its id."""
    send = ["send", "--month", "2026-10", "--now", NOW, "--yes"]
    if path == ("resume",):  # paused: SendGrid refused a mistyped API key
        result = runner.invoke(
            main, [*send, "--transport", "sendgrid"], env={**env, "SENDGRID_API_KEY": "x"}
        )
        assert result.exit_code == 5 and "refused our credentials" in result.output
    elif path == ("cancel",):  # scheduled at SendGrid for later
        at = (datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds")
        result = runner.invoke(main, [*send, "--transport", "sendgrid", "--send-at", at], env=env)
        assert result.exit_code == 0, result.output
    else:
        assert runner.invoke(main, send, env=env).exit_code == 0
    listed = runner.invoke(main, ["campaigns", "--json"])
    return str(json.loads(listed.stdout)[0]["id"])


def test_every_command_has_an_example() -> None:
    missing = [" ".join(p) for p, cmd in walk(main) if p and not examples(cmd)]
    assert missing == []


def copy_example_site(where: Path) -> Path:
    site = where / "site"
    site.mkdir(parents=True)
    shutil.copytree(ROOT / "content", site / "content")
    for name in ("newsletter.toml", "subscribers.example.csv"):
        shutil.copy(ROOT / name, site / name)
    return site


@pytest.fixture
def example_site(tmp_path: Path) -> Path:
    return copy_example_site(tmp_path)


def _parse_only(args: list[str]) -> None:
    """Resolve the command and parse its flags (types, choices) without running it."""
    parent = main.make_context("newsletter", [], resilient_parsing=True)
    command: click.Command = main
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        name = args.pop(0)
        command = command.commands[name]
        parent = command.make_context(
            name, [] if isinstance(command, click.Group) else args, parent=parent
        )


@pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning")
def test_every_help_example_runs_on_the_example_site(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each example runs on a fresh copy of the example site with its subscribers imported."""
    # click.launch (--open) runs xdg-open: a stand-in records what would have been opened
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    opener.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "opened.txt"}\n', encoding="utf-8")
    opener.chmod(opener.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("SENDGRID_API_KEY", "NEWSLETTER_SECRET", "SENDGRID_API_URL", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    failures: list[str] = []
    ran = 0
    with serve_in_thread(FaultPlan(), tmp_path / "fake.sqlite") as api_url:
        for n, (path, line) in enumerate(ALL):
            site = copy_example_site(tmp_path / str(n))
            monkeypatch.chdir(site)
            for setup in (
                ["subscribers", "import", "subscribers.example.csv"],
                ["suppressions", "add", "zoe.muller@example.com"],
            ):
                assert runner.invoke(main, setup).exit_code == 0, setup
            if path == ("init",):  # a site that has not been set up yet
                (site / "newsletter.toml").unlink()
            env = {"SENDGRID_API_URL": api_url}
            if path == ("send",) or path in ON_A_CAMPAIGN:
                env.update(SENDGRID_ENV)
            if path in ON_A_CAMPAIGN:
                line = line.replace(CAMPAIGN_ID, prepare_campaign(path, runner, env))
            elif path == ("send",) and "last-issue" in line:
                prepare_campaign(path, runner, env)  # October went out; November is next
            words = shlex.split(line)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                key, _, value = words.pop(0).partition("=")
                env[key] = "x" * 40 if value == "..." else value
            assert words[0] == "newsletter", line
            redirect = None
            if ">" in words:  # `... > file`: what the example writes to the file
                at = words.index(">")
                redirect, words = site / words[at + 1], words[:at]
            args = words[1:]
            if path == ("send",) and "last-issue" in args:
                args += ["--now", "2026-12-01T09:00"]
            elif any(w in ("--month", "--since", "--post", "--days") for w in args):
                args += ["--now", NOW]
            if path == ("send",) and not {"--yes", "--dry-run", "--test"} & set(args):
                args += ["--yes"]  # the operator's "y" at the prompt
            if path in SERVERS:
                try:
                    _parse_only(list(args))
                except click.ClickException as err:
                    failures.append(f"{line}: {err.format_message()}")
                continue
            result = runner.invoke(main, args, env=env)
            ran += 1
            if result.exit_code != EXIT.get(line, 0) or "Traceback" in result.output:
                failures.append(f"{line}: exit {result.exit_code}: {result.output[-300:]}")
            elif redirect is not None and not result.stdout.strip():
                failures.append(f"{line}: wrote nothing to {redirect.name}")
    assert failures == []
    assert ran >= 15
    assert "email.html" in (tmp_path / "opened.txt").read_text(encoding="utf-8")


def test_a_bad_example_is_caught(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples test can fail: a slug that is not in the example site exits non-zero."""
    monkeypatch.chdir(example_site)
    result = CliRunner().invoke(main, ["posts", "--post", "2026-10-05-wrap-up", "--json"])
    assert result.exit_code == 2 and "no post matches" in result.output
    with pytest.raises(click.NoSuchOption):
        _parse_only(["preview", "--no-such-flag"])


def test_site_flags_work_before_and_after_the_command(
    example_site: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no newsletter.toml here: the flags must point at the site
    runner = CliRunner()
    flags = ["--config", str(example_site / "newsletter.toml"), "--timezone", "Asia/Tokyo"]
    before = runner.invoke(main, [*flags, "posts", "--month", "2026-10", "--now", NOW, "--json"])
    after = runner.invoke(main, ["posts", "--month", "2026-10", "--now", NOW, "--json", *flags])
    assert before.exit_code == 0, before.output
    assert after.output == before.output
    dates = [datetime.fromisoformat(post["date"]) for post in json.loads(after.output)]
    assert dates and all(d.utcoffset() is not None for d in dates)
    assert "+09:00" in after.output  # posts whose date has no zone are in the flag's zone
    pacific = runner.invoke(main, ["posts", "--month", "2026-10", "--now", NOW, "--json"])
    assert pacific.output != after.output or "+09:00" not in pacific.output
    content = runner.invoke(
        main, ["posts", "--json", "--content", str(example_site / "content"), "--now", NOW]
    )
    assert content.exit_code == 0, content.output
    assert len(json.loads(content.stdout)) >= 10
    # a flag after the command wins over the same flag before it
    both = runner.invoke(main, ["--timezone", "UTC", "posts", "--json", *flags, "--now", NOW])
    alone = runner.invoke(main, [*flags, "posts", "--json", "--now", NOW])
    assert both.output == alone.output


def test_dash_h_works_on_every_command() -> None:
    runner = CliRunner()
    for path, _ in walk(main):
        result = runner.invoke(main, [*path, "-h"], prog_name="newsletter")
        assert result.exit_code == 0 and result.output.startswith("Usage: newsletter"), path


def test_json_is_one_document_and_jsonl_streams(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(example_site)
    runner = CliRunner()
    runner.invoke(main, ["subscribers", "import", "subscribers.example.csv"])
    runner.invoke(main, ["suppressions", "add", "zoe.muller@example.com"])
    for args, kind in [
        (["posts", "--month", "2026-10", "--now", NOW], list),
        (["lint", "--month", "2026-10", "--now", NOW], list),
        (["subscribers", "list"], list),
        (["subscribers", "stats"], dict),
        (["suppressions", "list"], list),
        (["doctor", "--transport", "outbox"], list),
    ]:
        result = runner.invoke(main, [*args, "--json"])
        assert result.exit_code == 0, (args, result.output)
        document = json.loads(result.output)
        assert isinstance(document, kind), args
        if kind is list and args[0] != "lint":
            assert document, args
            lines = runner.invoke(main, [*args, "--jsonl"]).output.splitlines()
            assert [json.loads(line) for line in lines] == document
    suppressed = json.loads(runner.invoke(main, ["suppressions", "list", "--json"]).output)
    assert datetime.fromisoformat(suppressed[0]["created_at"]).utcoffset() is not None
    stats = json.loads(runner.invoke(main, ["subscribers", "stats", "--json"]).output)
    assert stats["subscribers"] == 20 and stats["suppressions_by_reason"] == {"manual": 1}
    subscribers = json.loads(runner.invoke(main, ["subscribers", "list", "--json"]).output)
    assert all(
        datetime.fromisoformat(s["subscribed_at"]).utcoffset() is not None for s in subscribers
    )


def test_tables_show_the_site_time_zone(
    example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(example_site)
    runner = CliRunner()
    runner.invoke(main, ["suppressions", "add", "zoe.muller@example.com"])
    pacific = runner.invoke(main, ["suppressions", "list"]).output
    tokyo = runner.invoke(main, ["suppressions", "list", "--timezone", "Asia/Tokyo"]).output
    assert re.search(r"\tP[SD]T$", pacific.strip()) or " PST" in pacific or " PDT" in pacific
    assert " JST" in tokyo and pacific != tokyo


def test_no_colour_when_piped_or_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colour needs a terminal, and NO_COLOR turns it off even there."""
    from newsletter.cli.output import colour_enabled

    class Tty:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_enabled(Tty())  # type: ignore[arg-type]
    assert not colour_enabled(Pipe())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_enabled(Tty())  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, 1, 500, 1201])
def test_streamed_json_is_one_valid_document_at_any_length(
    count: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from newsletter.cli.output import JSON, JSONL, TABLE, emit_list

    rows = [{"n": n, "when": datetime(2026, 10, 5, 9, 30).astimezone()} for n in range(count)]
    assert emit_list(iter(rows), JSON)
    document = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in document] == list(range(count))
    assert all(datetime.fromisoformat(r["when"]).utcoffset() is not None for r in document)
    assert emit_list(iter(rows), JSONL)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == document
    assert not emit_list(iter(rows), TABLE) and capsys.readouterr().out == ""
