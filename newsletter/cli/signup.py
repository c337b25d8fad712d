"""``newsletter snippet``, ``subscribers purge-pending``, ``subscribers send-confirmations``, and
the sign-up wiring of ``newsletter serve`` (which transport sends confirmation emails)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from newsletter.cli import App, main
from newsletter.cli.audience import subscribers_group
from newsletter.errors import ConfigError
from newsletter.signup import HONEYPOT, Policy, purge_pending, queue_confirmations
from newsletter.store import open_store
from newsletter.transports.base import Transport

if TYPE_CHECKING:
    from newsletter.web.signup import SignupWeb


def _now() -> datetime:
    return datetime.now(UTC)


def signup_transport(app: App, requested: str | None = None) -> Transport:
    """The transport confirmation emails leave by: ``send.transport`` (auto: SendGrid when
    SENDGRID_API_KEY is set, else the outbox). Real mail is refused with unsafe settings."""
    from newsletter.campaign.wiring import build_transport, choose_transport
    from newsletter.signup.mail import refuse_unsafe
    from newsletter.transports.outbox import OutboxTransport

    settings, secrets = app.settings, app.secrets
    name = choose_transport(settings, secrets, requested)
    if name == "sendgrid":
        for warning in refuse_unsafe(settings, secrets):
            click.echo(f"warning: {warning}", err=True)
        return build_transport(settings, secrets, name, now=_now())
    return OutboxTransport(settings.path(settings.send.outbox_dir))


def signup_for_serve(app: App, secret: str) -> SignupWeb | None:
    """The sign-up part of ``newsletter serve`` (None when ``signup.enabled`` is false)."""
    from newsletter.web.signup import SignupConfig, SignupWeb

    settings = app.settings
    policy = Policy.from_settings(settings)
    if not policy.enabled:
        return None
    return SignupWeb(
        SignupConfig(
            store_path=settings.db_path,
            secret=secret,
            settings=settings,
            policy=policy,
            transport=signup_transport(app),
            clock=_now,
        )
    )


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
      newsletter snippet --tag conference --fetch > _includes/signup.html
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
    policy = Policy.from_settings(app.settings)
    with open_store(app.settings.db_path) as store:
        if dry_run:
            n = store.signup.count_expired_pending(now=_now(), older_than=policy.confirm_for)
            click.echo(f"{n} expired pending subscribers would be deleted (dry run)")
            return
        n = purge_pending(store, policy=policy, now=_now())
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
    sent, queued = send_confirmations(app, transport, queue_unmailed=True)
    click.echo(f"{queued} confirmation emails queued; {sent} sent")


def send_confirmations(
    app: App, transport_name: str | None, *, queue_unmailed: bool
) -> tuple[int, int]:
    """Queue (optionally) and send confirmation emails now; returns (sent, queued)."""
    from newsletter.signup.mail import ConfirmationEmail, Mailer, send_queued
    from newsletter.transports.base import Sender
    from newsletter.unsubscribe import SECRET_FILE, signing_secret

    settings = app.settings
    policy = Policy.from_settings(settings)
    transport = signup_transport(app, transport_name)
    secret = signing_secret(
        app.secrets,
        allow_generated=transport.name != "sendgrid",
        keep_at=settings.db_path.parent / SECRET_FILE,
    )
    e = settings.email
    mailer = Mailer(
        transport,
        ConfirmationEmail.render(settings),
        Sender(e.from_email, e.from_name, e.reply_to),
        secret,
        policy.base_url,
    )
    sent = queued = 0
    with open_store(settings.db_path) as store:
        if queue_unmailed:
            queued = queue_confirmations(store, policy=policy, now=_now())
        while True:
            report = send_queued(store, mailer, now=_now)
            if not report.taken:
                break
            sent += report.sent
    transport.close()
    return sent, queued
