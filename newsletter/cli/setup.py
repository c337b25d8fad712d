"""``newsletter init`` sets a site up in one command; ``newsletter doctor`` checks it."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from email_validator import EmailNotValidError, validate_email

from newsletter.cli import App, main
from newsletter.cli.output import emit_list, json_options, style
from newsletter.config import EmailSettings, load_settings
from newsletter.content import apply_generator_defaults, read_posts
from newsletter.doctor import failures, run_checks, summary
from newsletter.errors import ConfigError, NewsletterError
from newsletter.site_setup import (
    SiteAnswers,
    Written,
    detect_site,
    is_placeholder_address,
    valid_url,
    write_site_files,
)
from newsletter.templating import default_templates_dir


class _Asker:
    """Each value from its flag, else what the site says, else the person (or a default)."""

    def __init__(self, *, interactive: bool, accept_defaults: bool, found_in: str) -> None:
        self.interactive = interactive
        self.accept_defaults = accept_defaults
        self.found_in = found_in
        self.sources: dict[str, str] = {}
        self.missing: list[str] = []

    def value(
        self, key: str, flag: str, given: str | None, found: str, question: str, fallback: str
    ) -> str:
        if given is not None:
            return given.strip()
        if self.interactive:
            answer = str(click.prompt(question, default=found or fallback, show_default=True))
            if found and answer == found:
                self.sources[key] = f"from {self.found_in}"
            return answer.strip()
        if found:
            self.sources[key] = f"from {self.found_in}"
            return found
        if self.accept_defaults and fallback is not None:
            return fallback
        self.missing.append(flag)
        return ""


def _check(answers: SiteAnswers) -> None:
    if not valid_url(answers.url):
        raise ConfigError(
            f"{answers.url!r} is not a site URL; give one like https://blog.example.net",
            key="--site-url",
        )
    try:
        ZoneInfo(answers.timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(
            f"unknown time zone {answers.timezone!r}; use an IANA name such as Europe/Berlin",
            key="--timezone",
        ) from err
    for key, address in (("--from-email", answers.from_email), ("--reply-to", answers.reply_to)):
        if not address:
            continue
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as err:
            raise ConfigError(f"{address!r} is not an email address ({err})", key=key) from err
    if answers.unsubscribe_url and not (
        valid_url(answers.unsubscribe_url) and answers.unsubscribe_url.startswith("https://")
    ):
        raise ConfigError(
            f"{answers.unsubscribe_url!r} is not an https URL; give the public address of "
            "`newsletter serve`, e.g. https://news.example.net",
            key="--unsubscribe-url",
        )


@main.command("init")
@click.argument(
    "directory", default=".", type=click.Path(file_okay=False, path_type=Path), required=False
)
@click.option("--site-name", help="The site's name, shown in emails.")
@click.option("--site-url", help="The site's public URL, e.g. https://blog.example.net.")
@click.option("--content", multiple=True, help="Posts folder, relative to DIRECTORY (repeat).")
@click.option("--timezone", help="IANA time zone of the site's dates, e.g. Europe/Berlin.")
@click.option("--permalink", help="Post URL pattern, e.g. /:year/:month/:slug/.")
@click.option("--from-email", help="Sender address (a domain you authenticated in SendGrid).")
@click.option("--from-name", help="Sender name inboxes show (default: the site's name).")
@click.option("--reply-to", help="Where replies go (default: the sender).")
@click.option("--postal-address", help="Your postal address for the footer (required by law).")
@click.option(
    "--unsubscribe-url", help="Public https URL where `newsletter serve` runs (can wait)."
)
@click.option("--templates", is_flag=True, help="Also copy the default templates to edit.")
@click.option("--force", is_flag=True, help="Replace an existing newsletter.toml.")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing: take flags, findings, defaults.")
def init_command(
    directory: Path,
    site_name: str | None,
    site_url: str | None,
    content: tuple[str, ...],
    timezone: str | None,
    permalink: str | None,
    from_email: str | None,
    from_name: str | None,
    reply_to: str | None,
    postal_address: str | None,
    unsubscribe_url: str | None,
    templates: bool,
    force: bool,
    yes: bool,
) -> None:
    """Set a site up: detect it, ask for what is missing, write newsletter.toml.

    Looks at DIRECTORY (default: here) for the generator (Jekyll, Hugo, Eleventy, Zola, Pelican,
    MkDocs, Astro, Docusaurus), the site's URL, name and time zone and the posts folder; asks for
    the rest (sender, postal address, the public URL of `newsletter serve`); writes a commented
    newsletter.toml (what the generator's config says stays there, read at every run) and a
    .env.example naming the secrets to set. With --yes it asks nothing.

    Run it bare on a terminal to be asked. Refuses to replace newsletter.toml without --force.

    \b
    Examples:
      newsletter init --yes --site-url https://northbay-pyconf.example.org
      newsletter init --yes --site-url https://northbay-pyconf.example.org --templates
    """
    root = directory.resolve()
    if not root.is_dir():
        raise ConfigError("not a folder; create it or give the site's folder", path=directory)
    detected = detect_site(root)
    found_in = detected.config.name if detected.config else "the posts found"
    interactive = not yes and sys.stdin.isatty()
    ask = _Asker(interactive=interactive, accept_defaults=yes, found_in=found_in)
    if detected.generator:
        click.echo(f"{detected.label} site ({found_in})", err=True)
    name = ask.value(
        "name", "--site-name", site_name, detected.name, "Site name", root.name.title()
    )
    url = ask.value("url", "--site-url", site_url, detected.url, "Site URL (https://...)", "")
    folders = content or detected.content
    if content:
        posts = tuple(content)
    else:
        answer = ask.value("content", "--content", None, ",".join(folders), "Posts folder", "posts")
        posts = tuple(p.strip() for p in answer.split(",") if p.strip())
    zone = ask.value("timezone", "--timezone", timezone, detected.timezone, "Time zone", "UTC")
    domain = url.split("://", 1)[-1].split("/", 1)[0].removeprefix("www.")
    sender = ask.value(
        "from_email",
        "--from-email",
        from_email,
        "",
        "Send from (an address on a domain you authenticated in SendGrid)",
        f"news@{domain}" if interactive and domain else EmailSettings().from_email,
    )
    sender_name = ask.value("from_name", "--from-name", from_name, "", "Sender name", name)
    postal = ask.value(
        "postal_address", "--postal-address", postal_address, "", "Postal address", ""
    )
    public = ask.value(
        "unsubscribe_url",
        "--unsubscribe-url",
        unsubscribe_url,
        "",
        "Public https URL of `newsletter serve` (blank: set it later)",
        "",
    )
    if ask.missing:
        raise ConfigError(
            "could not find everything in the site and there is no terminal to ask: pass "
            + ", ".join(dict.fromkeys(ask.missing))
            + " (or --yes to take the defaults)"
        )
    if not url:
        raise ConfigError("the site's URL was not found; pass --site-url", key="--site-url")
    if not posts:
        raise ConfigError("no posts folder was found; pass --content DIR", key="--content")
    answers = SiteAnswers(
        name=name,
        url=url.rstrip("/"),
        content=posts,
        from_email=sender,
        from_name=sender_name,
        reply_to=(reply_to or "").strip(),
        postal_address=postal,
        unsubscribe_url=public.rstrip("/"),
        timezone=zone,
        permalink=(permalink or detected.permalink).strip(),
        language=detected.language,
        generator=detected.generator,
        sources=ask.sources,
        from_generator=frozenset(
            key
            for key in detected.from_generator
            if ask.sources.get(key) == f"from {found_in}"
            or (key in ("permalink", "language") and not (key == "permalink" and permalink))
        ),
        generator_config=found_in,
    )
    _check(answers)
    written = write_site_files(
        root, answers, templates_from=default_templates_dir() if templates else None, force=force
    )
    _report(root, answers, written)


def _report(root: Path, answers: SiteAnswers, written: Written) -> None:
    """What was written, what is still missing, and the next three commands."""
    click.echo(f"wrote {written.config}")
    if written.env_example:
        click.echo(
            f"wrote {written.env_example} (the secrets to set; copy it to .env, kept out of git)"
        )
    if written.templates:
        click.echo(f"copied {len(written.templates)} default templates to {root / 'templates'}")
    if written.gitignore:
        click.echo(f"added .env, the store and outbox/ to {written.gitignore}")
    for folder in answers.content:
        if not (root / folder).is_dir():
            click.echo(f"warning: the posts folder {folder} does not exist yet", err=True)
    if is_placeholder_address(answers.from_email):
        click.echo(
            f"warning: the sender {answers.from_email} is a placeholder; set [email] from_email "
            "before a real send",
            err=True,
        )
    if not answers.postal_address:
        click.echo("warning: no postal address; set [email] postal_address", err=True)
    here = Path.cwd().resolve()
    click.echo("\nNext:")
    if root != here:
        click.echo(f"  cd {os.path.relpath(root, here)}")
    prog = _invoked_as(root)
    month = _newest_month(written.config)
    for command, why in (
        (f"posts --month {month}", "the posts of the first issue"),
        (f"preview --month {month} --open", "the email, in a browser"),
        ("doctor", "what a real send still needs"),
    ):
        click.echo(f"  {prog} {command:<32} # {why}")


def _newest_month(config: Path) -> str:
    """The month of the site's newest published post (the first issue's), or YYYY-MM."""
    try:
        posts = read_posts(apply_generator_defaults(load_settings(config))).posts
    except NewsletterError:
        return "YYYY-MM"
    now = datetime.now(UTC)
    dates = [p.date for p in posts if not p.draft and p.date <= now]
    return max(dates).strftime("%Y-%m") if dates else "YYYY-MM"


def _invoked_as(where: Path) -> str:
    """How to type the command from ``where``: ``newsletter`` when it is on PATH, else its path
    (``.venv/bin/newsletter`` after ``make demo``), else ``python -m newsletter``."""
    if shutil.which("newsletter"):
        return "newsletter"
    argv0 = Path(sys.argv[0])
    if argv0.name == "newsletter" and argv0.is_file():
        relative = os.path.relpath(argv0.resolve(), where)
        return relative if not relative.startswith("..") else str(argv0.resolve())
    return f"{Path(sys.executable).name} -m newsletter"


_MARKS = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "fail": ("fail", "red")}


@main.command("doctor")
@click.option(
    "--transport",
    type=click.Choice(["sendgrid", "outbox", "auto"]),
    default="sendgrid",
    show_default=True,
    help="Check for a send through this transport (outbox: a rehearsal; auto: as `send`).",
)
@json_options(stream=True)
@click.pass_obj
def doctor_command(app: App, transport: str, output: str) -> None:
    """Check everything a real send depends on; each check says ok, warn or fail, and the fix.

    The sender (not a placeholder domain), the https unsubscribe URL, NEWSLETTER_SECRET (32+
    characters), SENDGRID_API_KEY and its scopes (asks SendGrid), the sender verified or its
    domain authenticated (asks SendGrid), the webhook key, the postal address, and the store
    (reachable, migrated, how many people a send would reach). Exit 2 when a check fails: `send`
    through SendGrid runs the same setting checks and refuses.

    \b
    Examples:
      newsletter doctor
      newsletter doctor --transport outbox --json
    """
    checks = run_checks(app.settings, app.secrets, transport=transport)
    if not emit_list((c.as_json() for c in checks), output):
        width = max(len(c.name) for c in checks)
        for check in checks:
            mark, colour = _MARKS[check.status]
            click.echo(f"{style(mark, colour, bold=True)}  {check.name:<{width}}  {check.message}")
            if check.fix:
                click.echo(f"      {'':<{width}}  fix: {check.fix}")
        click.echo(summary(checks))
    if failures(checks):
        sys.exit(2)
