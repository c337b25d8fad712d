"""``newsletter subscribers …``, ``newsletter suppressions …`` and ``newsletter serve``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.api import SUPPRESSION_REASONS as REASONS
from newsletter.cli import App, main
from newsletter.cli.output import emit_json, emit_list, iso_time, json_options, local_time
from newsletter.errors import InputError
from newsletter.subscribers import Notice


def _stderr(message: str) -> None:
    click.echo(message, err=True)


@main.group("subscribers")
def subscribers_group() -> None:
    """Import, list, count, remove and export subscribers.

    \b
    Examples:
      newsletter subscribers import subscribers.example.csv --tag conference
      newsletter subscribers stats
    """


@subscribers_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tag", "tags", multiple=True, help="Add this tag to every row (repeatable).")
@click.option("--dry-run", is_flag=True, help="Check and count, write nothing.")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the file.")
@click.option("--delimiter", default=",", show_default=True, help="Column separator.")
@click.option(
    "--quiet", is_flag=True, help="Do not list suppressed rows (rejected rows still are)."
)
@click.option(
    "--status",
    type=click.Choice(["confirmed", "pending"]),
    default="confirmed",
    show_default=True,
    help="pending: a list with no recorded consent; not mailed until each reader confirms.",
)
@click.option(
    "--send-confirmations",
    is_flag=True,
    help="With --status pending: email each new reader a confirmation link now.",
)
@click.pass_obj
def import_command(
    app: App,
    file: Path,
    tags: tuple[str, ...],
    dry_run: bool,
    encoding: str,
    delimiter: str,
    quiet: bool,
    status: str,
    send_confirmations: bool,
) -> None:
    """Import subscribers from a CSV file (columns: email, first_name, last_name, tags,
    subscribed_at, and any custom column).

    Every row that is not imported is printed as FILE:LINE: reason. Exits 1 when any row was
    rejected (the other rows are still imported).

    \b
    Examples:
      newsletter subscribers import subscribers.example.csv --tag 2026-conference --dry-run
      newsletter subscribers import subscribers.example.csv --status pending --send-confirmations
    """

    def notice(n: Notice) -> None:
        if n.kind == "rejected" or not quiet:
            click.echo(n.format(), err=True)

    subscribers = app.newsletter.subscribers
    report = subscribers.import_csv(
        file,
        tags=tags,
        dry_run=dry_run,
        encoding=encoding,
        delimiter=delimiter,
        on_notice=notice,
        status=status,
        send_confirmations=send_confirmations,
    )
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if report.custom_fields:
        click.echo(f"custom fields: {', '.join(report.custom_fields)}")
    click.echo(report.summary() + (" (dry run: nothing written)" if dry_run else ""))
    if send_confirmations and not dry_run:
        sent, queued = subscribers.send_confirmations(log=_stderr)
        click.echo(f"{queued} confirmation emails queued; {sent} sent")
    if report.rejected:
        sys.exit(1)


@subscribers_group.command("list")
@click.option("--tag", "tags", multiple=True, help="Only subscribers with this tag (any-of).")
@json_options(stream=True)
@click.option("--active", is_flag=True, help="Leave out suppressed subscribers.")
@click.pass_obj
def list_command(app: App, tags: tuple[str, ...], output: str, active: bool) -> None:
    """List subscribers (email, name, tags, and why an address is suppressed).

    \b
    Example:
      newsletter subscribers list --tag speaker --json
      newsletter subscribers list --active --jsonl
    """
    subscribers = app.newsletter.subscribers
    records = (
        {**record, "subscribed_at": iso_time(record["subscribed_at"])}
        for record in subscribers.records(tags, active_only=active)
    )
    if emit_list(records, output):
        return
    for sub, reason in subscribers.with_reasons(tags, active_only=active):
        name = f"{sub.first_name} {sub.last_name}".strip()
        status = f"suppressed: {reason}" if reason else "active"
        if sub.status == "pending":
            status = "pending" + (f", suppressed: {reason}" if reason else "")
        click.echo(f"{sub.email}\t{name}\t{';'.join(sub.tags)}\t{status}")


@subscribers_group.command("stats")
@json_options()
@click.pass_obj
def stats_command(app: App, output: str) -> None:
    """Count subscribers (pending, confirmed, unsubscribed), active recipients, suppressions by
    reason, and tags.

    \b
    Examples:
      newsletter subscribers stats
      newsletter subscribers stats --json
    """
    nl = app.newsletter
    st = nl.subscribers.stats()
    total_suppressions = nl.suppressions.count()
    if output != "table":
        emit_json(
            {
                "subscribers": st.subscribers,
                "pending": st.pending,
                "confirmed": st.confirmed,
                "unsubscribed": st.unsubscribed,
                "active": st.active,
                "suppressed_subscribers": st.suppressed_subscribers,
                "suppressed_addresses": total_suppressions,
                "suppressions_by_reason": dict(st.suppressions_by_reason),
                "tags": dict(st.tags),
            }
        )
        return
    click.echo(f"subscribers: {st.subscribers}")
    click.echo(f"  pending (signed up, not confirmed): {st.pending}")
    click.echo(f"  confirmed: {st.confirmed}")
    click.echo(f"  unsubscribed: {st.unsubscribed}")
    click.echo(f"active (will be mailed): {st.active}")
    click.echo(f"suppressed subscribers: {st.suppressed_subscribers}")
    click.echo(f"suppressed addresses: {total_suppressions}")
    for reason, n in st.suppressions_by_reason.items():
        click.echo(f"  {reason}: {n}")
    if st.tags:
        click.echo("active subscribers by tag:")
        for tag, n in st.tags.items():
            click.echo(f"  {tag}: {n}")


@subscribers_group.command("remove")
@click.argument("email")
@click.option("--suppress", is_flag=True, help="Also suppress the address (manual).")
@click.pass_obj
def remove_command(app: App, email: str, suppress: bool) -> None:
    """Delete a subscriber (their name, tags and fields). A suppression of the address stays.

    With --suppress the address is suppressed too, even when it is not a subscriber (exit 0).

    \b
    Example:
      newsletter subscribers remove zoe.muller@example.com --suppress
    """
    subscribers = app.newsletter.subscribers
    if suppress:  # a bad address: nothing is changed
        done_ = subscribers.remove_and_suppress(email, source="cli")
        removed, added = done_.removed, done_.suppressed
    else:
        removed, added = subscribers.remove(email), False
    if not removed and not suppress:
        raise InputError("no subscriber with this address; nothing removed", path=email)
    done = f"removed {email}" if removed else f"{email}: no subscriber with this address"
    if added:
        done += " and suppressed it" if removed else "; suppressed it"
    elif suppress:
        done += "; it was already suppressed"
    click.echo(done)


@subscribers_group.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option("--tag", "tags", multiple=True, help="Only subscribers with this tag (any-of).")
@click.option(
    "--include-suppressed",
    is_flag=True,
    help="Also export suppressed and pending subscribers (with reason).",
)
@click.pass_obj
def export_command(app: App, file: Path, tags: tuple[str, ...], include_suppressed: bool) -> None:
    """Export subscribers as CSV in the import format ('-' for standard output), with each one's
    status and consent (when and where it was given, the page, the keyed hash of the client
    address, when it was confirmed). Pending and suppressed ones only with --include-suppressed.

    \b
    Example:
      newsletter subscribers export backup.csv
    """
    subscribers = app.newsletter.subscribers
    if str(file) == "-":
        subscribers.export_csv(sys.stdout, tags=tags, include_suppressed=include_suppressed)
        return
    n = subscribers.export_csv(file, tags=tags, include_suppressed=include_suppressed)
    click.echo(f"{file}: {n} subscribers written", err=True)


@main.group("suppressions")
def suppressions_group() -> None:
    """The addresses never to mail: list, add, remove, and sync from SendGrid.

    \b
    Examples:
      newsletter suppressions list
      newsletter suppressions add bounced@example.org
    """


@suppressions_group.command("list")
@click.option("--reason", type=click.Choice(REASONS), help="Only this reason.")
@json_options(stream=True)
@click.pass_obj
def suppressions_list(app: App, reason: str | None, output: str) -> None:
    """List suppressed addresses with reason, source and time (in the site's time zone).

    \b
    Examples:
      newsletter suppressions list --reason bounced
      newsletter suppressions list --json
    """
    suppressions = app.newsletter.suppressions
    records = (
        {
            "email": s.email,
            "reason": s.reason,
            "source": s.source,
            "created_at": iso_time(s.created_at),
            "detail": s.detail,
        }
        for s in suppressions.matching(reason or "")
    )
    if emit_list(records, output):
        return
    tz = app.settings.site.tz  # one tab-separated line per address, easy to cut/grep
    for s in suppressions.matching(reason or ""):
        detail = f"\t{s.detail}" if s.detail else ""
        since = local_time(s.created_at, tz, seconds=True)
        click.echo(f"{s.email}\t{s.reason}\t{s.source}\t{since}{detail}")


@suppressions_group.command("add")
@click.argument("emails", nargs=-1, required=True)
@click.option("--reason", type=click.Choice(REASONS), default="manual", show_default=True)
@click.pass_obj
def suppressions_add(app: App, emails: tuple[str, ...], reason: str) -> None:
    """Suppress one or more addresses: they are never mailed, and imports do not re-add them.

    \b
    Example:
      newsletter suppressions add someone@example.org --reason spam_report
    """
    added = app.newsletter.suppressions.add_many(emails, reason=reason, source="cli")
    click.echo(f"{added} suppressed, {len(emails) - added} already were")


@suppressions_group.command("remove")
@click.argument("emails", nargs=-1, required=True)
@click.pass_obj
def suppressions_remove(app: App, emails: tuple[str, ...]) -> None:
    """Lift suppressions (only do this when the person asked to be mailed again).

    \b
    Example:
      newsletter suppressions remove zoe.muller@example.com
    """
    lifted = app.newsletter.suppressions.remove_many(emails, source="cli")
    for e in emails:
        click.echo(f"{e}: {'no longer suppressed' if e in lifted else 'was not suppressed'}")
    if len(lifted) != len(emails):
        sys.exit(1)


@suppressions_group.command("sync")
@click.option("--group", "groups", multiple=True, type=int, help="Also this unsubscribe group.")
@click.pass_obj
def suppressions_sync(app: App, groups: tuple[int, ...]) -> None:
    """Pull SendGrid's unsubscribes, bounces, spam reports and group suppressions into the local
    list (needs SENDGRID_API_KEY with read access to Suppressions). Never removes anything.

    \b
    Example:
      SENDGRID_API_KEY=SG.xxx newsletter suppressions sync
    """
    report = app.newsletter.suppressions.sync(groups, log=_stderr)
    click.echo(report.summary())


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--access-log", is_flag=True, help="Log every request (URLs contain tokens).")
@click.option(
    "--insecure-webhook",
    is_flag=True,
    help="Accept unsigned SendGrid events when no verification key is set (testing only).",
)
@click.pass_obj
def serve_command(app: App, host: str, port: int, access_log: bool, insecure_webhook: bool) -> None:
    """Run the unsubscribe page, one-click unsubscribe, the SendGrid event webhook and the
    subscribe form (POST /subscribe, double opt-in; see `newsletter snippet`).

    Needs NEWSLETTER_SECRET (the same one used to send, at least 32 bytes). Put it behind
    HTTPS at unsubscribe.base_url. Without unsubscribe.webhook_public_key the event webhook
    refuses every request unless --insecure-webhook is given.

    \b
    Example:
      NEWSLETTER_SECRET=... newsletter serve --host 0.0.0.0 --port 8000
    """
    from newsletter.web.app import create_app, run_server

    config = app.newsletter.web_config(insecure_webhook=insecure_webhook, log=_stderr)
    run_server(create_app(config), host=host, port=port, access_log=access_log)
