"""The ``newsletter`` command. With ``web``, the only place that wires real parts together.

Each group of commands lives in its own module and registers itself on :data:`main`:
``posts`` (content + selection), ``render`` (render, lint, preview), ``audience`` (subscribers,
suppressions, serve), ``send`` (send, resume, status, campaigns).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from newsletter.api import Newsletter
from newsletter.config import Secrets, Settings, load_secrets, load_settings
from newsletter.errors import NewsletterError


@dataclass
class App:
    """What every command gets: the settings (read once) and the environment's secrets."""

    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from newsletter.content.generators import apply_generator_defaults

            # the site generator's own config (Jekyll, Hugo, ...) fills what was not set
            self._settings = apply_generator_defaults(
                load_settings(self.config, overrides=self.overrides)
            )
        return self._settings

    @property
    def secrets(self) -> Secrets:
        return load_secrets(os.environ)

    @property
    def newsletter(self) -> Newsletter:
        """The library object every command calls; its log prints to stderr."""
        from newsletter.cli.send_wiring import say

        return Newsletter(self.settings, self.secrets, log=say)


class NewsletterGroup(click.Group):
    """Turns every NewsletterError into one clear line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as err:
            click.echo(f"error: {err.format()}", err=True)
            sys.exit(err.exit_code)
        except sqlite3.Error as err:  # the store failed mid-command (a damaged page, the disk)
            from newsletter.api import store_fault

            fault = store_fault(_store_path(ctx), err)
            click.echo(f"error: {fault.format()}", err=True)
            sys.exit(fault.exit_code)


def _store_path(ctx: click.Context) -> Path | str:
    try:
        return ctx.obj.settings.db_path if isinstance(ctx.obj, App) else "the store"
    except NewsletterError:
        return "the store"


_SITE_FLAGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--config",),
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "Settings file (default: ./newsletter.toml).",
        },
    ),
    (("--content", "content"), {"multiple": True, "help": "Posts folder (repeatable)."}),
    (("--site-url",), {"help": "Base URL of the site, e.g. https://example.org."}),
    (("--permalink",), {"help": "Permalink pattern, e.g. /news/:year/:slug/."}),
    (
        ("--timezone",),
        {"help": "IANA time zone for dates without one, e.g. America/New_York."},
    ),
    (
        ("--generator",),
        {
            "metavar": "NAME",
            "help": "Site generator whose config gives defaults: auto (default), jekyll, hugo, "
            "..., none.",
        },
    ),
    (
        ("--feed", "feeds"),
        {"multiple": True, "metavar": "URL_OR_FILE", "help": "Read posts from a feed."},
    ),
]
_OVERRIDE_KEYS = {
    "content": "site.content",
    "site_url": "site.url",
    "permalink": "site.permalink",
    "timezone": "site.timezone",
    "generator": "site.generator",
    "feeds": "site.feeds",
}


def _site_flag_given(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A site flag given after the command: set it on the App, as if given before."""
    if value is None or value == ():
        return
    app = ctx.find_object(App)
    if app is None:  # parsed without running `main` (e.g. only checked)
        return
    if param.name == "config":
        app.config = value
    elif param.name in _OVERRIDE_KEYS:
        app.overrides[_OVERRIDE_KEYS[param.name]] = list(value) if param.multiple else value
    app._settings = None


def install_site_flags(command: click.Command) -> None:
    """Let every command below ``command`` take the site flags after its name too.

    ``newsletter posts --content DIR`` then means ``newsletter --content DIR posts``. A command
    that has an option of the same name keeps its own.
    """
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            install_site_flags(sub)
        return
    taken = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for decls, attrs in _SITE_FLAGS:
        if decls[0] in taken:
            continue
        command.params.append(
            click.Option(list(decls), expose_value=False, callback=_site_flag_given, **attrs)
        )


_site_options = [click.option(*decls, **attrs) for decls, attrs in _SITE_FLAGS]


def site_options(f: Any) -> Any:
    for option in reversed(_site_options):
        f = option(f)
    return f


@click.group(cls=NewsletterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@site_options
@click.version_option(package_name="newsletter")
@click.pass_context
def main(
    ctx: click.Context,
    config: Path | None,
    content: tuple[str, ...],
    site_url: str | None,
    permalink: str | None,
    timezone: str | None,
    generator: str | None = None,
    feeds: tuple[str, ...] = (),
) -> None:
    """Turn a website's Markdown posts into an email and send it to subscribers.

    Run `newsletter init` in a site's folder to set it up, `newsletter doctor` before a real send.

    \b
    Examples:
      newsletter posts --month 2026-10
      newsletter send --month 2026-10 --yes
      newsletter posts --site-url https://blog.example.net --content content --json
    """
    overrides: dict[str, Any] = {
        "site.content": list(content) or None,
        "site.url": site_url,
        "site.permalink": permalink,
        "site.timezone": timezone,
        "site.generator": generator,
        "site.feeds": list(feeds) or None,
    }
    ctx.obj = App(config=config, overrides=overrides)


# Command modules register themselves on `main` when imported (they import `main` from here,
# so these imports come last).
from newsletter.cli import audience, posts, render, send, setup, signup  # noqa: E402
from newsletter.cli import store as store_commands  # noqa: E402

install_site_flags(main)

__all__ = [
    "App",
    "audience",
    "install_site_flags",
    "main",
    "posts",
    "render",
    "send",
    "setup",
    "signup",
    "store_commands",
]
