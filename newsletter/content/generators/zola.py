"""Zola: ``config.toml`` with ``base_url``. Posts in ``content/blog`` (or ``posts``); URLs follow
the file path (``/blog/SLUG/``) unless a post sets ``path``; ``[extra]`` is ``site.*``.

Dates: ``date`` in the front matter, else the ``path`` (``path = "2025/02/13/slug"``), else the
folder or file name (``2025-02-13-slug.md``, ``2025-02-13_slug/index.md``). Front matter is
TOML (``+++``), so messages say ``date = 2026-03-01``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from newsletter.content.generators.base import SiteDefaults, first_dir, first_file, load_data


class Zola:
    name = "zola"
    label = "Zola"

    def config_file(self, root: Path) -> Path | None:
        path = first_file(root, "config.toml", "zola.toml")
        if path is not None and "base_url" in load_data(path):
            return path
        return None

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        data = load_data(config) if config else {}
        section = first_dir(root / "content", "blog", "posts", "news")
        extra = data.get("extra")
        values = dict(extra) if isinstance(extra, Mapping) else {}
        values.setdefault("extra", dict(values))
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=(f"content/{section}" if section else "content",),
            url=str(data.get("base_url") or "").rstrip("/"),
            permalink=f"/{section}/:slug/" if section else "/:slug/",
            name=str(data.get("title") or ""),
            language=str(data.get("default_language") or ""),
            values=values,
            default_syntax="toml",
        )
