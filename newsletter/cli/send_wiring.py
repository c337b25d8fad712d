"""What the send commands share on the terminal: flags, the progress bar, the summary table.

Every rule lives in :class:`newsletter.Newsletter`; this module only turns flags into
:class:`~newsletter.SendOptions` and results into lines.

Exit codes: 0 sent (or already sent), 2 a setting, flag or another unfinished campaign stands in
the way, 4 another process is sending this campaign, 5 paused (progress saved; ``resume``
continues), 6 finished but some recipients were rejected, failed or are unknown (``status`` says
which and why).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from newsletter.api import LEDGER_STATES, TRANSPORTS, ProgressFn, SendOptions, SendResult, Summary
from newsletter.errors import ConfigError


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def say(message: str) -> None:
    """The library's log, on the terminal: one line on stderr."""
    stderr_console().print(message)


def parse_send_at(value: str | None, tz: Any) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as err:
        raise ConfigError(
            f"{value!r} is not a date-time; use ISO 8601, e.g. 2026-12-01T09:00", key="--send-at"
        ) from err
    return when if when.tzinfo else when.replace(tzinfo=tz)


def options_from(opts: dict[str, Any], **extra: Any) -> SendOptions:
    """The send flags as :class:`SendOptions` (unset flags fall back to newsletter.toml)."""
    return SendOptions(
        transport=opts.get("transport"),
        concurrency=opts.get("concurrency"),
        max_per_second=opts.get("max_per_second"),
        max_per_hour=opts.get("max_per_hour"),
        retry_base=opts.get("retry_base"),
        skip_sync=bool(opts.get("skip_sync")),
        workers=opts.get("workers") or 1,
        **extra,
    )


@contextmanager
def progress_bar(enabled: bool) -> Iterator[ProgressFn | None]:
    """A progress bar on stderr, only on a terminal (cron mail and CI logs get the summary)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} recipients/s"),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=False,
    )
    task = progress.add_task("send", total=None, rate="-")
    started = time.monotonic()
    first: list[int] = []

    def update(done: int, total: int) -> None:
        if not first:
            first.append(done)
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = f"{(done - first[0]) / elapsed:,.0f}"
        progress.update(task, completed=done, total=total, rate=rate)

    with progress:
        yield update


def print_summary(summary: Summary) -> None:
    console = stderr_console()
    table = Table(title=f"recipients of {summary.campaign_id}")  # its state: the line after
    table.add_column("state")
    table.add_column("recipients", justify="right")
    for state in LEDGER_STATES:
        n = summary.counts.get(state, 0)
        if n:
            table.add_row(state, f"{n:,}")
    table.add_row("total", f"{summary.total:,}")
    console.print(table)
    if summary.elapsed:
        rate = summary.accepted_now / summary.elapsed if summary.elapsed > 0 else 0.0
        console.print(
            f"this run: {summary.accepted_now:,} accepted in {summary.elapsed:.1f} s "
            f"({rate:,.0f}/s), {summary.requests} requests, {summary.retries} retries"
        )
    for state, reason, n in summary.errors[:10]:
        console.print(f"  {state}: {n:,} — {reason}")


def report(result: SendResult) -> None:
    """Print what a send or resume did, then exit non-zero if it left work (see module doc)."""
    if result.summary is not None:
        print_summary(result.summary)
    if result.outbox is not None:
        say(f"messages written to {result.outbox}/ — open {result.outbox / 'index.html'}")
    click.echo(result.message)
    for note in result.notes:
        click.echo(note)
    result.check()


def send_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--transport",
                type=click.Choice(TRANSPORTS),
                help="outbox (files), sendgrid, or auto: sendgrid when SENDGRID_API_KEY is set.",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1, 64),
                help="Requests in flight at once (default: send.concurrency, 4).",
            ),
            click.option(
                "--max-per-second",
                type=click.FloatRange(min=0),
                help="At most this many recipients per second (default: no limit).",
            ),
            click.option(
                "--max-per-hour",
                type=click.IntRange(min=0),
                help="At most this many recipients per hour (default: no limit).",
            ),
            click.option(
                "--retry-base",
                type=click.FloatRange(min=0),
                help="First retry wait in seconds (doubles each time, with jitter). Default 1.",
            ),
            click.option(
                "--workers",
                type=click.IntRange(1, 32),
                help="Sender processes sharing the campaign (a PostgreSQL store only; each "
                "claims batches, every recipient is sent once). Default 1.",
            ),
            click.option("--no-progress", is_flag=True, help="No progress bar."),
            click.option(
                "--skip-sync",
                is_flag=True,
                help="Do not pull SendGrid's suppression lists first (the local list still "
                "applies).",
            ),
        ]
    ):
        f = option(f)
    return f
