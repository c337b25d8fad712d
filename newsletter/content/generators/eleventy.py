"""Eleventy: ``eleventy.config.js|mjs|cjs|ts`` or ``.eleventy.js``. Input folder from
``dir: {input: "src"}``; posts in ``INPUT/posts`` or ``INPUT/blog``; URL ``/posts/SLUG/`` (the
file's path, Eleventy's default); site URL and ``site.*`` values from ``_data/site.json`` or
``_data/metadata.json`` (``url``, ``title``, ``language``) or a plain ``url: "..."`` in
``_data/metadata.js``."""

from __future__ import annotations

import re
from pathlib import Path

from newsletter.content.generators.base import (
    SiteDefaults,
    first_dir,
    first_file,
    js_string,
    load_data,
    read_text,
)

NAMES = (
    "eleventy.config.js",
    "eleventy.config.mjs",
    "eleventy.config.cjs",
    "eleventy.config.ts",
    ".eleventy.js",
)
_INPUT = re.compile(r"""\binput\s*:\s*["'`]([^"'`]+)["'`]""")


class Eleventy:
    name = "eleventy"
    label = "Eleventy"

    def config_file(self, root: Path) -> Path | None:
        return first_file(root, *NAMES)

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        match = _INPUT.search(read_text(config))
        source = match.group(1).strip("./") if match else ""
        base = root / source if source else root
        section = first_dir(base, "posts", "blog")
        folder = "/".join(p for p in (source, section) if p) or "."
        data_dir = base / "_data"
        values = load_data(data_dir / "site.json") if (data_dir / "site.json").is_file() else {}
        meta = first_file(data_dir, "metadata.json")
        metadata = load_data(meta) if meta else {}
        script = read_text(first_file(data_dir, "metadata.js", "metadata.mjs", "site.js"))
        url = str(values.get("url") or metadata.get("url") or js_string(script, "url"))
        name = str(values.get("title") or metadata.get("title") or js_string(script, "title") or "")
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=(folder,),
            url=url.rstrip("/"),
            permalink=f"/{section}/:slug/" if section else "/:slug/",
            name=name,
            language=str(values.get("language") or metadata.get("language") or ""),
            values=values,
        )
