"""One output convention for every command that shows data.

- ``--json`` prints one JSON document: an array for lists, an object for one thing.
- ``--jsonl`` (lists only) streams one JSON object per line as the rows are read.
- Times: ISO 8601 with their offset in JSON; the site's time zone in tables.
- Colour only on a terminal, never with ``NO_COLOR`` set or when the output is piped.

Usage in a command module::

    @main.command("things")
    @json_options(stream=True)
    @click.pass_obj
    def things(app: App, output: str) -> None:
        rows = (thing_json(t) for t in ...)
        if emit_list(rows, output):
            return
        ...print the table...
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

TABLE, JSON, JSONL = "table", "json", "jsonl"


def json_options(*, stream: bool = False) -> Callable[[F], F]:
    """Add ``--json`` (and ``--jsonl`` for lists) as one ``output`` argument: table|json|jsonl."""

    def decorate(f: F) -> F:
        if stream:
            f = click.option(
                "--jsonl",
                "output",
                flag_value=JSONL,
                help="Stream one JSON object per line (for large lists and pipes).",
            )(f)
        what = "an array" if stream else "an object"
        return click.option(
            "--json",
            "output",
            flag_value=JSON,
            default=TABLE,
            help=f"Print one JSON document ({what}) instead of text.",
        )(f)

    return decorate


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any, *, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False, default=_default)


def emit_json(data: Any) -> None:
    """Print one JSON document."""
    click.echo(dumps(data))


def emit_list(rows: Iterable[Mapping[str, Any]], output: str) -> bool:
    """Print ``rows`` as the output mode asks; False (nothing printed) for a table.

    Both JSON modes stream: ``--json`` writes one array a row per line as the rows come, so a
    list of any length takes constant memory. Lines are written in chunks (click.echo flushes).
    """
    if output not in (JSON, JSONL):
        return False
    chunk: list[str] = []
    count = 0
    for row in rows:
        line = dumps(row, indent=None)
        if output == JSON:
            line = ("[\n  " if count == 0 else ",\n  ") + line
        chunk.append(line)
        count += 1
        if len(chunk) == 500:
            if output == JSON:
                click.echo("".join(chunk), nl=False)
            else:
                click.echo("\n".join(chunk))
            chunk.clear()
    if output == JSONL:
        if chunk:
            click.echo("\n".join(chunk))
        return True
    click.echo("".join(chunk) + ("\n]" if count else "[]"))
    return True


def parse_time(value: str | datetime | None) -> datetime | None:
    """A stored time (ISO 8601 text, UTC when it has no offset) as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso_time(value: str | datetime | None) -> str | None:
    """ISO 8601 with an offset, for JSON (text that is not a time is passed through)."""
    moment = parse_time(value)
    if moment is None:
        return value if isinstance(value, str) and value else None
    return moment.isoformat()


def local_time(value: str | datetime | None, tz: tzinfo, *, seconds: bool = False) -> str:
    """A time for a table: in the site's zone, ``2026-10-05 09:00 PDT``; ``-`` when unset."""
    moment = parse_time(value)
    if moment is None:
        return str(value) if value else "-"
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z").strip()


def colour_enabled(stream: TextIO | None = None) -> bool:
    """Colour on a terminal only: never when piped, never with NO_COLOR set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream if stream is not None else sys.stdout
    try:
        return stream.isatty()
    except ValueError:  # a closed stream
        return False


def style(text: str, fg: str, *, bold: bool = False, err: bool = False) -> str:
    """``text`` coloured when :func:`colour_enabled` for stdout (or stderr), else unchanged."""
    stream = sys.stderr if err else sys.stdout
    if not colour_enabled(stream):
        return text
    return click.style(text, fg=fg, bold=bold)


def table(rows: Iterable[tuple[str, ...]], header: tuple[str, ...]) -> None:
    """Print aligned columns, header first."""
    body = list(rows)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for row in [header, *body]:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
