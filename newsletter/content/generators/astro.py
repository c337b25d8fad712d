"""Astro: ``astro.config.mjs|js|ts``. ``site`` + ``base`` is the URL; posts in a content
collection (``src/content/blog``, ``src/data/blog``) or ``src/pages/blog|posts``; URL
``/blog/SLUG/``. ``.md`` and ``.mdx`` posts."""

from __future__ import annotations

from pathlib import Path

from newsletter.content.generators.base import (
    SiteDefaults,
    first_dir,
    first_file,
    join_url,
    js_string,
    read_text,
)

NAMES = ("astro.config.mjs", "astro.config.js", "astro.config.ts", "astro.config.mts")


class Astro:
    name = "astro"
    label = "Astro"

    def config_file(self, root: Path) -> Path | None:
        return first_file(root, *NAMES)

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        text = read_text(config)
        folder = first_dir(
            root,
            "src/content/blog",
            "src/content/posts",
            "src/data/blog",
            "src/pages/blog",
            "src/pages/posts",
        )
        section = Path(folder).name if folder else "blog"
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=(folder or "src/content/blog",),
            url=join_url(js_string(text, "site"), js_string(text, "base")),
            permalink=f"/{section}/:slug/",
        )
