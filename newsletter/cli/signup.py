"""``newsletter snippet``, ``subscribers purge-pending`` and ``subscribers send-confirmations``
(the rules live in :mod:`newsletter.signup`)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from newsletter.cli import App, main
from newsletter.cli.audience import subscribers_group
from newsletter.errors import ConfigError
from newsletter.signup import HONEYPOT, Policy
from newsletter.signup.ops import purge_expired, send_confirmations


def _now() -> datetime:
    return datetime.now(UTC)


def _warn(message: str) -> None:
    click.echo(message, err=True)


@main.command("snippet")
@click.option("--fetch", "with_script", is_flag=True, help="Add the small fetch() script.")
@click.option("--tag", "tags", multiple=True, help="Subscribe to this tag (from signup.tags).")
@click.option("--form-name", default="site", show_default=True, help="Recorded with consent.")
@click.option("--no-names", is_flag=True, help="Leave out the first-name field.")
@click.pass_obj
def snippet_command(
    app: App, with_script: bool, tags: tuple[str, ...], form_name: str, no_names: bool
) -> None:
    """Print an HTML sign-up form to paste into a page of the site.

    It posts to `newsletter serve` (unsubscribe.base_url) and works without JavaScript: the
    reader lands on a thank-you page (signup.thank_you_url, or serve's own). With --fetch, a
    small script signs up without leaving the page.

    \b
    Example:
      newsletter snippet --fetch                   # a form for the whole list
    """
    from newsletter.signup import SignupInvalid, clean_form
    from newsletter.templating import environment, render_template

    settings = app.settings
    policy = Policy.from_settings(settings)
    try:  # the same checks the server makes, so a snippet it would refuse is never printed
        clean_form({"email": "reader@example.org", "form": form_name}, tags, policy)
    except SignupInvalid as err:
        raise ConfigError(err.message, key=f"--{err.field.replace('_', '-')}") from err
    env = environment(settings.path(settings.email.templates))
    html = render_template(
        env,
        "signup/snippet.html.j2",
        {
            "action": f"{policy.base_url}/subscribe",
            "form_name": form_name,
            "tags": tags,
            "names": not no_names,
            "with_script": with_script,
            "honeypot": HONEYPOT,
        },
    )
    click.echo(html.strip())
    if not policy.enabled:
        click.echo("note: signup.enabled is false: the server refuses this form", err=True)


@subscribers_group.command("purge-pending")
@click.option("--dry-run", is_flag=True, help="Count only.")
@click.pass_obj
def purge_pending_command(app: App, dry_run: bool) -> None:
    """Delete pending subscribers whose confirmation link has expired (signup.confirm_days).

    \b
    Example:
      newsletter subscribers purge-pending
    """
    n = purge_expired(app.settings, now=_now(), dry_run=dry_run)
    if dry_run:
        click.echo(f"{n} expired pending subscribers would be deleted (dry run)")
    else:
        click.echo(f"{n} expired pending subscribers deleted")


@subscribers_group.command("send-confirmations")
@click.option(
    "--transport",
    type=click.Choice(["auto", "outbox", "sendgrid"]),
    default=None,
    help="How the emails leave (default: send.transport).",
)
@click.pass_obj
def send_confirmations_command(app: App, transport: str | None) -> None:
    """Send a confirmation email to every pending subscriber never sent one, and whatever is
    queued (e.g. when `newsletter serve` is not running).

    \b
    Example:
      newsletter subscribers send-confirmations --transport outbox
    """
    sent, queued = send_confirmations(app.settings, app.secrets, transport=transport, log=_warn)
    click.echo(f"{queued} confirmation emails queued; {sent} sent")
