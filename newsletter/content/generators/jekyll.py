"""Jekyll: ``_config.yml``. Posts in ``_posts`` under ``collections_dir``;
URL = ``url`` + ``baseurl``; ``permalink`` (a style name or a pattern); ``timezone``; every key
is a ``site.*`` value."""

from __future__ import annotations

from pathlib import Path

from newsletter.content.generators.base import SiteDefaults, first_file, join_url, load_data

# https://jekyllrb.com/docs/permalinks/#built-in-formats
STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "none": "/:categories/:title:output_ext",
    "ordinal": "/:categories/:year/:month/:day/:title:output_ext",  # no :y_day: by date
    "weekdate": "/:categories/:year/:month/:day/:title:output_ext",
}


class Jekyll:
    name = "jekyll"
    label = "Jekyll"

    def config_file(self, root: Path) -> Path | None:
        return first_file(root, "_config.yml", "_config.yaml", "_config.toml")

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        data = load_data(config) if config else {}
        base = str(data.get("collections_dir") or "").strip("/")
        # _drafts are left out: Jekyll builds them only with --drafts, and they have no date
        posts = f"{base}/_posts" if base else "_posts"
        permalink = str(data.get("permalink") or "date")
        return SiteDefaults(
            generator=self.name,
            config=config,
            content=(posts,),
            url=join_url(str(data.get("url") or ""), str(data.get("baseurl") or "")),
            permalink=STYLES.get(permalink, permalink),
            timezone=str(data.get("timezone") or ""),
            name=str(data.get("title") or ""),
            language=str(data.get("lang") or ""),
            values={k: v for k, v in data.items() if isinstance(k, str)},
        )
