"""Site generators, detected from the site root, and the defaults each one's config implies.

=============  ===================================================  ============================
generator      detected by                                          defaults read
=============  ===================================================  ============================
pelican        ``pelicanconf.py``                                   SITEURL, PATH, ARTICLE_URL,
                                                                    TIMEZONE, SITENAME
mkdocs         ``mkdocs.yml`` with the ``blog`` plugin               site_url, blog_dir, authors
docusaurus     ``docusaurus.config.{js,ts,mjs}``                    url + baseUrl, authors.yml
astro          ``astro.config.{mjs,js,ts,mts}``                     site + base, collection
eleventy       ``eleventy.config.*``, ``.eleventy.js``              dir.input, _data/site.json
jekyll         ``_config.yml``                                      url + baseurl, permalink,
                                                                    timezone, every key: site.*
hugo           ``hugo.{toml,yaml,json}``, ``config.*`` + baseURL    baseURL, contentDir,
                                                                    permalinks, timeZone, params
zola           ``config.toml`` with ``base_url``                    base_url, [extra]
=============  ===================================================  ============================

``[site] generator = "auto"`` (the default) detects, in the order above; a name picks one;
``"none"`` turns detection off. Whatever ``newsletter.toml`` or a flag sets wins over a default
(:attr:`newsletter.config.Settings.explicit` says what was set).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.config import Settings
from newsletter.content.generators.astro import Astro
from newsletter.content.generators.base import Generator, SiteDefaults
from newsletter.content.generators.docusaurus import Docusaurus
from newsletter.content.generators.eleventy import Eleventy
from newsletter.content.generators.hugo import Hugo
from newsletter.content.generators.jekyll import Jekyll
from newsletter.content.generators.mkdocs import MkDocs
from newsletter.content.generators.pelican import Pelican
from newsletter.content.generators.zola import Zola
from newsletter.content.model import SiteProfile
from newsletter.errors import ConfigError

GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (Pelican(), MkDocs(), Docusaurus(), Astro(), Eleventy(), Jekyll(), Hugo(), Zola())
}
_DEFAULTED = ("content", "url", "permalink", "timezone", "name", "language")


def detect(root: Path) -> tuple[Generator, Path] | None:
    """The generator whose config file is in ``root``, with that file; None for none."""
    for generator in GENERATORS.values():
        config = generator.config_file(root)
        if config is not None:
            return generator, config
    return None


def site_defaults(settings: Settings) -> SiteDefaults | None:
    """The defaults of the site's generator (``[site] generator``), None when there is none."""
    choice = settings.site.generator.strip().lower()
    if choice in ("", "none"):
        return None
    if choice == "auto":
        found = detect(settings.root)
        if found is None:
            return None
        generator, config = found
        return generator.defaults(settings.root, config)
    generator_named = GENERATORS.get(choice)
    if generator_named is None:
        known = ", ".join(["auto", *GENERATORS, "none"])
        raise ConfigError(
            f"unknown generator {settings.site.generator!r}; use one of: {known}",
            path=settings.config_path,
            key="site.generator",
        )
    return generator_named.defaults(settings.root, generator_named.config_file(settings.root))


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def apply_generator_defaults(settings: Settings) -> Settings:
    """``settings`` with the generator's defaults filled in where nothing was set explicitly.

    ``site.generator`` becomes the generator's name ("none" when there is none). A default that
    would not work (a zone name Python does not know, a URL that is not http(s)) is left out.
    """
    defaults = site_defaults(settings)
    if defaults is None:
        return dataclasses.replace(
            settings, site=dataclasses.replace(settings.site, generator="none")
        )
    changes: dict[str, Any] = {"generator": defaults.generator}
    for key in _DEFAULTED:
        value = getattr(defaults, key)
        if not value or f"site.{key}" in settings.explicit:
            continue
        if key == "timezone" and not _valid_zone(str(value)):
            continue
        if key == "url" and not str(value).startswith(("http://", "https://")):
            continue
        changes[key] = value
    if defaults.values:
        changes["values"] = {**defaults.values, **settings.site.values}
    return dataclasses.replace(settings, site=dataclasses.replace(settings.site, **changes))


def describe(settings: Settings) -> str | None:
    """One line on what the generator supplied (for ``newsletter posts``), None without one.

    ``settings`` are the ones :func:`apply_generator_defaults` returned.
    """
    generator = GENERATORS.get(settings.site.generator)
    if generator is None:
        return None
    config = generator.config_file(settings.root)
    source = f" ({config.name})" if config is not None else ""
    folders = ", ".join(settings.site.content)
    url = settings.site.url.rstrip("/") + settings.site.permalink
    return f"read as a {generator.label} site{source}: posts in {folders}, URLs {url}"


def profile(settings: Settings) -> SiteProfile:
    """What reading posts needs from the generator: its name, authors map, front matter."""
    defaults = site_defaults(settings)
    if defaults is None:
        return SiteProfile()
    return SiteProfile(
        generator=defaults.generator,
        authors=dict(defaults.authors),
        default_syntax=defaults.default_syntax,
    )


__all__ = [
    "GENERATORS",
    "Generator",
    "SiteDefaults",
    "apply_generator_defaults",
    "describe",
    "detect",
    "profile",
    "site_defaults",
]
