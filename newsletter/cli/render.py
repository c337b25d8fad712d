"""``newsletter render``, ``newsletter lint`` and ``newsletter preview``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from newsletter.archive import write_archive
from newsletter.cli import App, main
from newsletter.cli.options import load_selection, query_from, resolve_now, selection_options
from newsletter.cli.output import emit_list, json_options
from newsletter.config import Settings
from newsletter.errors import ConfigError, LintFailed, NewsletterError
from newsletter.lint import Finding, has_errors, lint_issue
from newsletter.mime import email_for
from newsletter.rendered import RenderedIssue
from newsletter.selection import Selection

F = TypeVar("F", bound=Callable[..., Any])


def issue_options(f: F) -> F:
    """Flags shared by render, lint and preview: layout, subject, intro."""
    options = [
        click.option(
            "--layout",
            type=click.Choice(["digest", "post"]),
            help="Email layout (default: post with --post, else digest).",
        ),
        click.option("--subject", help="Subject line (a Jinja expression, like the setting)."),
        click.option(
            "--intro",
            "intro_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Markdown file with the digest's intro (default: email.intro).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def design_options(f: F) -> F:
    """Flags of render, lint and preview for trying the design (send reads the settings)."""
    options = [
        click.option(
            "--group-by",
            type=click.Choice(["category", "none"]),
            help="Digest sections by each post's first category (default: email.group_by).",
        ),
        click.option(
            "--full",
            is_flag=True,
            help="Refuse an issue over email.max_html_kb instead of cutting it to fit.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def render_from_options(app: App, opts: dict[str, Any]) -> RenderedIssue:
    """Select posts with the flags and render them once."""
    return select_and_render(app, opts)[1]


def select_and_render(app: App, opts: Mapping[str, Any]) -> tuple[Selection, RenderedIssue]:
    """Select posts with the flags, then render the issue once (``render``, ``preview``).

    With ``--post`` the layout defaults to ``post``, otherwise ``digest``; ``--month`` names the
    issue after that month rather than the day it is rendered.
    """
    if not query_from(opts).has_selection:
        # what the next `send --since last-issue` would send, said out loud
        click.echo("no --month, --since or --post given: showing --since last-issue", err=True)
        opts = {**opts, "since": "last-issue"}
    picked = load_selection(app, opts)
    group_by = {None: None, "none": ""}.get(opts.get("group_by"), opts.get("group_by"))
    issue = app.newsletter.render(picked, group_by=group_by, full=bool(opts.get("full")))
    return picked.selection, issue


def recipient_values(app: App, email: str | None) -> tuple[str, str, dict[str, str]]:
    """(to address, to name, token values) for ``--as EMAIL``, or generic preview values."""
    return app.newsletter.reader_values(email)


def print_findings(findings: list[Finding]) -> None:
    for finding in findings:
        click.echo(finding.format(), err=True)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    click.echo(f"lint: {errors} error(s), {warnings} warning(s)", err=True)


def write_email(
    out: Path,
    issue: RenderedIssue,
    settings: Settings,
    *,
    to: str,
    to_name: str,
    values: dict[str, str],
    now: datetime,
) -> dict[str, Path]:
    """email.html, email.txt and email.eml for one recipient in ``out``."""
    one = email_for(issue, settings, to=to, to_name=to_name, values=values, now=now)
    html, text, message = one.html, one.text, one.message
    paths = {"html": out / "email.html", "text": out / "email.txt", "eml": out / "email.eml"}
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths["html"].write_text(html, encoding="utf-8")
        paths["text"].write_text(text, encoding="utf-8")
        paths["eml"].write_bytes(bytes(message))
    except OSError as err:
        raise ConfigError(f"cannot write to {out} ({err.strerror})", key="--out") from err
    return paths


@main.command("render")
@selection_options
@issue_options
@design_options
@click.option("--as", "as_email", metavar="EMAIL", help="Personalize for this subscriber.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for email.html, email.txt and email.eml.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open email.html in the browser.")
@click.option(
    "--archive",
    "to_archive",
    is_flag=True,
    help="Also publish this render in the public archive (sends publish their own pages).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (an object).")
@click.pass_obj
def render_command(
    app: App,
    as_email: str | None,
    out: Path,
    open_browser: bool,
    to_archive: bool,
    as_json: bool,
    **opts: Any,
) -> None:
    """Render the selected posts into email.html, email.txt and email.eml, and lint them.

    With --archive, also writes the issue's public page to the archive folder
    (email.archive_dir); a send publishes its page by itself.

    \b
    Examples:
      newsletter render --month 2026-10 --out build/
      newsletter render --post conference-wrap-up --as ada.lovelace@example.com --out build/ --open
      newsletter render --since last-issue --out build/ --json
    """
    settings = app.settings
    issue = render_from_options(app, opts)
    now = resolve_now(opts, settings.site.tz)
    to, to_name, values = recipient_values(app, as_email)
    paths = write_email(out, issue, settings, to=to, to_name=to_name, values=values, now=now)
    if to_archive:
        page = write_archive(issue, settings, now=now)
        if not as_json:
            click.echo(f"archive page: {page}")
    findings = lint_issue(issue, settings, longest=None)
    for warning in issue.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        data = {
            "subject": issue.subject,
            "preheader": issue.preheader,
            "html_bytes": len(issue.html.encode("utf-8")),
            "text_bytes": len(issue.text.encode("utf-8")),
            "posts": list(issue.post_paths),
            "warnings": [f.__dict__ for f in findings if f.severity == "warning"],
            "errors": [f.__dict__ for f in findings if f.severity == "error"],
        }
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(f"subject: {issue.subject}")
        for kind, path in paths.items():
            click.echo(f"{kind}: {path}")
        print_findings(findings)
    if open_browser:
        click.launch(str(paths["html"].resolve()))


@main.group("archive")
def archive_group() -> None:
    """The public web archive of the issues that went out.

    \b
    Example:
      newsletter archive build
    """


@archive_group.command("build")
@click.pass_obj
def archive_build_command(app: App) -> None:
    """Write every sent issue's page, the index and the Atom feed again, from the store.

    Pages use the content each campaign froze when it started and are dated by its send.

    \b
    Example:
      newsletter archive build
    """
    pages = app.newsletter.archive_build()
    root = app.settings.path(app.settings.email.archive_dir)
    click.echo(
        f"{len(pages)} issue page(s); index: {root / 'index.html'}; feed: {root / 'feed.xml'}"
    )


@main.command("lint")
@selection_options
@issue_options
@design_options
@json_options(stream=True)
@click.pass_obj
def lint_command(app: App, output: str, **opts: Any) -> None:
    """Check the issue before it goes out; exit code 3 when there are errors.

    Checks Gmail's 102 KB clipping, relative or non-http links and images, missing alt text,
    the unsubscribe link, the postal address, leftover template syntax, subject and preheader.

    \b
    Examples:
      newsletter lint --month 2026-10
      newsletter lint --post conference-wrap-up --json
    """
    issue = render_from_options(app, opts)
    findings = lint_issue(issue, app.settings, longest=None)
    if not emit_list((asdict(f) for f in findings), output):
        print_findings(findings)
    if has_errors(findings):
        raise LintFailed("lint found errors; fix them before sending", list(findings))


@main.command("preview")
@selection_options
@issue_options
@design_options
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True)
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in the browser.")
@click.pass_obj
def preview_command(app: App, port: int, open_browser: bool, **opts: Any) -> None:
    """Serve a live preview of the email on 127.0.0.1 that updates as you edit.

    Desktop and mobile widths, the text part, the headers, the HTML source, the lint findings,
    and a "render as" subscriber choice. Saving a post, a template or newsletter.toml updates
    the page within a second or two; template errors show on the page.

    \b
    Examples:
      newsletter preview --month 2026-10
      newsletter preview --post conference-wrap-up --port 8080 --open
    """
    from newsletter.web.preview import PreviewState, serve

    def build(as_email: str | None) -> tuple[RenderedIssue, str, str, dict[str, str]]:
        fresh = App(config=app.config, overrides=app.overrides)
        issue = render_from_options(fresh, opts)
        to, to_name, values = recipient_values(fresh, as_email)
        return issue, to, to_name, values

    def context() -> Settings:
        return App(config=app.config, overrides=app.overrides).settings

    state = PreviewState(build=build, settings=context)
    try:
        serve(state, port=port, open_browser=open_browser)
    except OSError as err:
        raise NewsletterError(
            f"cannot listen on 127.0.0.1:{port} ({err.strerror}); pick another --port"
        ) from err
