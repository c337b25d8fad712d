"""Pelican: ``pelicanconf.py`` (and ``publishconf.py`` for the public ``SITEURL``). The files are
Python, and running an operator's code to learn a URL would be a surprise: only plain literal
assignments (``SITEURL = "https://..."``) are read, with :mod:`ast`.

``PATH`` (content) and ``ARTICLE_PATHS``, ``ARTICLE_URL`` (``{slug}.html``, ``{date:%Y}``,
``{category}``), ``TIMEZONE``, ``SITENAME``, ``DEFAULT_LANG``."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from newsletter.content.generators.base import SiteDefaults, first_file, read_text

_FIELD = re.compile(r"\{(slug|category|date:%Y|date:%m|date:%d|date:%y|lang|author)\}")
_TOKENS = {
    "slug": ":slug",
    "category": ":categories",
    "date:%Y": ":year",
    "date:%m": ":month",
    "date:%d": ":day",
    "date:%y": ":short_year",
    "lang": "en",
    "author": "",
}


def literals(text: str) -> dict[str, Any]:
    """Top-level ``NAME = <literal>`` assignments of a Python file (nothing is run)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return out


def url_pattern(article_url: str) -> str:
    return "/" + _FIELD.sub(lambda m: _TOKENS[m.group(1)], article_url).lstrip("/")


class Pelican:
    name = "pelican"
    label = "Pelican"

    def config_file(self, root: Path) -> Path | None:
        return first_file(root, "pelicanconf.py")

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        data = literals(read_text(config))
        public = literals(read_text(first_file(root, "publishconf.py")))
        path = str(data.get("PATH") or "content").strip("/")
        article_paths = data.get("ARTICLE_PATHS") or [""]
        content = tuple(
            f"{path}/{p}".rstrip("/") if p else path for p in article_paths if isinstance(p, str)
        )
        url = str(public.get("SITEURL") or data.get("SITEURL") or "").rstrip("/")
        values = {k.lower(): v for k, v in data.items() if k.isupper()}
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=content or (path,),
            url=url,
            permalink=url_pattern(str(data.get("ARTICLE_URL") or "{slug}.html")),
            timezone=str(data.get("TIMEZONE") or ""),
            name=str(data.get("SITENAME") or ""),
            language=str(data.get("DEFAULT_LANG") or ""),
            values=values,
        )
