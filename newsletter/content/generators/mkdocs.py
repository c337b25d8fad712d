"""MkDocs with Material's blog plugin: ``mkdocs.yml`` whose ``plugins`` hold ``blog``. Posts in
``DOCS_DIR/BLOG_DIR/posts``; URL ``/BLOG_DIR/YYYY/MM/DD/SLUG/`` (``post_url_format``
``{date}/{slug}``); ``site_url``; ``site_name``; ``extra`` is ``site.*``; authors from
``BLOG_DIR/.authors.yml``. Dates: ``date: 2026-03-01`` or ``date: {created: ..., updated: ...}``.
A post without a title takes its first ``# Heading``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from newsletter.content.generators.base import (
    SiteDefaults,
    authors_map,
    first_file,
    load_data,
)


def _blog_plugin(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    plugins = data.get("plugins")
    items: list[Any] = (
        list(plugins.items()) if isinstance(plugins, Mapping) else list(plugins or [])
    )
    for item in items:
        if isinstance(item, tuple):
            name, conf = item
        elif isinstance(item, Mapping) and len(item) == 1:
            name, conf = next(iter(item.items()))
        else:
            name, conf = item, {}
        if str(name) in ("blog", "material/blog"):
            return conf if isinstance(conf, Mapping) else {}
    return None


class MkDocs:
    name = "mkdocs"
    label = "MkDocs Material blog"

    def config_file(self, root: Path) -> Path | None:
        path = first_file(root, "mkdocs.yml", "mkdocs.yaml")
        if path is not None and _blog_plugin(load_data(path)) is not None:
            return path
        return None

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        data = load_data(config) if config else {}
        blog = _blog_plugin(data) or {}
        docs = str(data.get("docs_dir") or "docs").strip("/")
        blog_dir = str(blog.get("blog_dir") or "blog").strip("/")
        post_dir = str(blog.get("post_dir") or "{blog}/posts").replace("{blog}", blog_dir)
        url_format = str(blog.get("post_url_format") or "{date}/{slug}")
        date_format = str(blog.get("post_url_date_format") or "yyyy/MM/dd")
        date_part = (
            date_format.replace("yyyy", ":year").replace("MM", ":month").replace("dd", ":day")
        )
        path = url_format.replace("{date}", date_part).replace("{slug}", ":slug")
        path = path.replace("{file}", ":slug").replace("{categories}", ":categories")
        prefix = "" if blog_dir in (".", "") else f"/{blog_dir}"
        extra = data.get("extra")
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=(f"{docs}/{post_dir}",),
            url=str(data.get("site_url") or "").rstrip("/"),
            permalink=f"{prefix}/{path.strip('/')}/",
            name=str(data.get("site_name") or ""),
            values=dict(extra) if isinstance(extra, Mapping) else {},
            authors=authors_map(
                first_file(root / docs / blog_dir, ".authors.yml", ".authors.yaml"),
                nested="authors",
            ),
        )
