"""``newsletter send``: flags in, :meth:`newsletter.Newsletter.send` called, the result printed.

``resume``, ``cancel``, ``status`` and ``campaigns`` live in :mod:`newsletter.cli.campaigns`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

import newsletter.cli.campaigns  # noqa: F401 - registers resume, cancel, status and campaigns
from newsletter.api import Plan
from newsletter.cli import App, main
from newsletter.cli.options import query_from, resolve_now, selection_options
from newsletter.cli.render import issue_options, print_findings
from newsletter.cli.send_wiring import (
    options_from,
    parse_send_at,
    progress_bar,
    report,
    send_options,
    stderr_console,
)
from newsletter.errors import ConfigError, LintFailed, NewsletterError
from newsletter.lint import Finding


@main.command("send")
@selection_options
@issue_options
@send_options
@click.option(
    "--segment",
    multiple=True,
    metavar="TAG",
    help="Only subscribers with this tag (repeatable: any of them; case does not matter).",
)
@click.option("--dry-run", is_flag=True, help="Do everything but send (memory transport).")
@click.option("--sandbox", is_flag=True, help="SendGrid sandbox mode: validated, not delivered.")
@click.option(
    "--test",
    "test_to",
    multiple=True,
    metavar="ADDRESS",
    help="Send only to this address (repeatable): [TEST] subject, no ledger.",
)
@click.option("--send-at", metavar="DATETIME", help="Schedule delivery (within 72 hours).")
@click.option("--batch-id", default="", help="SendGrid batch id, to cancel a scheduled send.")
@click.option("--new-campaign", is_flag=True, help="Send again even if this was already sent.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def send_command(
    app: App,
    segment: tuple[str, ...],
    dry_run: bool,
    sandbox: bool,
    test_to: tuple[str, ...],
    send_at: str | None,
    batch_id: str,
    new_campaign: bool,
    yes: bool,
    **opts: Any,
) -> None:
    """Send an issue to every subscriber exactly once.

    A campaign is what you asked for, not the rendered bytes: a digest is its window of posts
    (--month, --since, --days, --since last-issue) and audience (--segment); a blast is the posts
    picked with --post. Running the same command again says "already sent" (and lists posts
    edited since), or finishes an interrupted send with the content it started with.
    --since last-issue sends what is new since the last digest to this audience, leaving out
    posts any campaign already carried.

    \b
    Examples:
      newsletter send --month 2026-10 --yes                 # outbox/ unless SENDGRID_API_KEY
      newsletter send --since last-issue --transport sendgrid
      newsletter send --post conference-wrap-up --test me@example.org
      newsletter send --month 2026-10 --dry-run
    """
    settings = app.settings
    nl = app.newsletter
    now = resolve_now(opts, settings.site.tz)
    query = query_from(opts, segment)
    options = options_from(
        opts,
        dry_run=dry_run,
        sandbox=sandbox,
        send_at=parse_send_at(send_at, settings.site.tz),
        batch_id=batch_id,
        new_campaign=new_campaign,
    )
    try:
        if test_to:
            result = nl.test_send(query, test_to, options, now=now)
        else:
            with progress_bar(not opts.get("no_progress") and not dry_run) as progress:
                result = nl.send(
                    query, options, now=now, confirm=_confirmer(yes), progress=progress
                )
    except LintFailed as err:
        print_findings([f for f in err.findings if isinstance(f, Finding)])
        raise
    if result.findings:
        print_findings(result.findings)
    report(result)


def _confirmer(yes: bool) -> Any:
    def confirm(plan: Plan) -> bool:
        console = stderr_console()
        console.print(f"campaign   {plan.campaign_id}")
        console.print(f"subject    {plan.subject}")
        console.print(f"posts      {len(plan.posts)}: " + ", ".join(plan.posts[:5]))
        console.print(f"recipients {plan.recipients:,}")
        console.print(f"transport  {plan.transport}")
        if yes or plan.transport.startswith("memory"):
            return True
        if not sys.stdin.isatty():
            raise ConfigError("not confirmed; add --yes to send without a prompt", key="--yes")
        if not click.confirm("Send now?", default=False, err=True):
            raise NewsletterError("not confirmed; nothing was sent")
        return True

    return confirm
