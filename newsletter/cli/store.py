"""``newsletter store``: migrate the store, copy it between SQLite and PostgreSQL."""

from __future__ import annotations

import click

from newsletter.cli import App, main
from newsletter.config import check_store_url


@main.group("store")
def store_group() -> None:
    """The store itself: its migrations, and moving it between SQLite and PostgreSQL.

    The store is the SQLite file of [store] path, or PostgreSQL when [store] url or
    NEWSLETTER_DATABASE_URL holds a postgresql:// URL.

    \b
    Example:
      newsletter store migrate
      newsletter store copy --to backup.db
    """


@store_group.command("migrate")
@click.pass_obj
def migrate_command(app: App) -> None:
    """Apply the migrations the store lacks (once, after upgrading the tool).

    A PostgreSQL store is only checked when a command starts; this applies what is missing.

    With NEWSLETTER_DATABASE_URL=postgresql://USER@HOST/DB set, it migrates that store.

    \b
    Example:
      newsletter store migrate
    """
    nl = app.newsletter
    applied = nl.migrate_store()
    where = nl.store_name()
    if applied:
        click.echo(f"{where}: applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo(f"{where}: up to date; nothing to apply")


@store_group.command("copy")
@click.option(
    "--to",
    "to",
    required=True,
    help="Where to copy the store: a postgresql:// URL or a SQLite file path.",
)
@click.option("--force", is_flag=True, help="Replace what a non-empty target holds.")
@click.pass_obj
def copy_command(app: App, to: str, force: bool) -> None:
    """Copy the whole store (subscribers, suppressions, consent, campaigns and their ledgers)
    into another store, and verify every table by count and checksum.

    The copy is one transaction on the target: all of it or nothing. A target that holds rows
    is refused unless --force. The password in a URL is never printed.

    To move to PostgreSQL: --to postgresql://USER@HOST/DB; back again: set
    NEWSLETTER_DATABASE_URL to that URL and copy --to a file.

    \b
    Example:
      newsletter store copy --to backup.db
    """
    check_store_url(to, key="--to", files_too=True)  # no password in a flag
    nl = app.newsletter
    report = nl.copy_store(to, force=force)
    for table in report.tables:
        click.echo(f"  {table.table:<22} {table.rows:>10,} rows  checksum {table.checksum}")
    click.echo(
        f"copied {report.rows:,} rows in {len(report.tables)} tables from {report.source} "
        f"to {report.target}; counts and checksums match"
    )
