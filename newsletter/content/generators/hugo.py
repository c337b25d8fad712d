"""Hugo: ``hugo.toml|yaml|json`` or ``config.*`` with ``baseURL``. Posts in ``contentDir``
(``content``) under ``posts``, ``post`` or ``blog``; ``permalinks`` for that section, else
``/SECTION/:slug/``; ``timeZone``; ``title``; ``params`` are the ``site.*`` values.

Front matter: ``publishDate`` is the date (when set), ``expiryDate`` ends selection, ``lastmod``
is the update date (see :mod:`newsletter.content.fields`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from newsletter.content.generators.base import SiteDefaults, first_dir, load_data

NAMES = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json")
LEGACY = ("config.toml", "config.yaml", "config.yml", "config.json")


def _get(data: Mapping[str, object], key: str) -> object:
    """Hugo keys are case-insensitive (baseURL, baseurl)."""
    lower = key.lower()
    return next((v for k, v in data.items() if str(k).lower() == lower), None)


class Hugo:
    name = "hugo"
    label = "Hugo"

    def config_file(self, root: Path) -> Path | None:
        for name in NAMES:
            if (root / name).is_file():
                return root / name
        for name in LEGACY:
            path = root / name
            if path.is_file() and _get(load_data(path), "baseURL") is not None:
                return path
        return None

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        data = load_data(config) if config else {}
        content_dir = str(_get(data, "contentDir") or "content").strip("/")
        section = first_dir(root / content_dir, "posts", "post", "blog")
        folder = f"{content_dir}/{section}" if section else content_dir
        permalinks = _get(data, "permalinks")
        pattern = ""
        if isinstance(permalinks, Mapping):
            page = permalinks.get("page")  # Hugo >= 0.120: [permalinks.page]
            table = page if isinstance(page, Mapping) else permalinks
            raw = table.get(section or "posts")
            pattern = raw if isinstance(raw, str) else ""
        params = _get(data, "params")
        values = dict(params) if isinstance(params, Mapping) else {}
        values.setdefault("params", dict(values))
        title = str(_get(data, "title") or "")
        if title:
            values.setdefault("title", title)
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=(folder,),
            url=str(_get(data, "baseURL") or "").rstrip("/"),
            permalink=pattern or (f"/{section}/:slug/" if section else "/:slug/"),
            timezone=str(_get(data, "timeZone") or ""),
            name=title,
            language=str(_get(data, "languageCode") or "").split("-")[0],
            values=values,
            default_syntax="toml" if config is not None and config.suffix == ".toml" else "yaml",
        )
