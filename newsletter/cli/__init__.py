"""The ``newsletter`` command. With ``web``, the only place that wires real parts together.

Each group of commands lives in its own module and registers itself on :data:`main`:
``posts`` (content + selection), ``render`` (render, lint, preview), ``audience`` (subscribers,
suppressions, serve), ``send`` (send, resume, status, campaigns).
"""

from __future__ import annotations

import os
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


@click.group(cls=NewsletterGroup)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (default: ./newsletter.toml).",
)
@click.option("--content", "content", multiple=True, help="Posts folder (repeatable).")
@click.option("--site-url", help="Base URL of the site, e.g. https://example.org.")
@click.option("--permalink", help="Permalink pattern, e.g. /news/:year/:slug/.")
@click.option("--timezone", help="IANA time zone for dates without one, e.g. America/New_York.")
@click.option(
    "--generator",
    metavar="NAME",
    help="Site generator whose config gives defaults: auto (default), jekyll, hugo, ..., none.",
)
@click.option(
    "--feed", "feeds", multiple=True, metavar="URL_OR_FILE", help="Read posts from a feed."
)
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

    \b
    Example:
      newsletter posts --month 2026-10
      newsletter send --since last-issue --yes
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
from newsletter.cli import audience, posts, render, send  # noqa: E402
from newsletter.cli import store as store_commands  # noqa: E402

__all__ = ["App", "audience", "main", "posts", "render", "send", "store_commands"]
