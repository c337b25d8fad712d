"""Docusaurus: ``docusaurus.config.js|ts|mjs``. ``url`` + ``baseUrl``; ``title``; posts in
``blog/`` (``2026-03-01-slug.md`` or ``2026-03-01-slug/index.md``); URL
``/blog/YYYY/MM/DD/SLUG`` (the date comes from the file name); ``authors`` keys resolved from
``blog/authors.yml``. ``.md`` and ``.mdx`` posts; a post without a title takes its first
``# Heading``."""

from __future__ import annotations

from pathlib import Path

from newsletter.content.generators.base import (
    SiteDefaults,
    authors_map,
    first_file,
    join_url,
    js_string,
    read_text,
)

NAMES = ("docusaurus.config.js", "docusaurus.config.ts", "docusaurus.config.mjs")


class Docusaurus:
    name = "docusaurus"
    label = "Docusaurus"

    def config_file(self, root: Path) -> Path | None:
        return first_file(root, *NAMES)

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        text = read_text(config)
        title = js_string(text, "title")
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=("blog",),
            url=join_url(js_string(text, "url"), js_string(text, "baseUrl")),
            permalink="/blog/:year/:month/:day/:slug",
            name=title,
            values={"title": title} if title else {},
            authors=authors_map(first_file(root / "blog", "authors.yml", "authors.yaml")),
        )
