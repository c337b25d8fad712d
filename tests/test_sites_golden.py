"""Golden pairs per generator: ``tests/golden/sites/<generator>/`` is a small site in that
generator's real shape (its config file plus posts), ``tests/golden/sites/<generator>.json`` what
the tool makes of it: the generator detected, the defaults read from its config, and every post
(or the error/warning it gives). A missing or different expectation fails;
``pytest --update-golden`` rewrites them (review the diff).

The site is copied to a temporary folder with no ``newsletter.toml``, so everything comes from
detection, as for a user who runs ``newsletter posts`` in the site's root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings, load_settings
from newsletter.content import (
    apply_generator_defaults,
    body_html,
    excerpt_of,
    read_posts,
)
from newsletter.content.model import Post

SITES = Path(__file__).parent / "golden" / "sites"
CASES = sorted(p.name for p in SITES.iterdir() if p.is_dir())


def _rel(text: str, root: Path) -> str:
    return text.replace(str(root), "SITE")


def post_data(post: Post, settings: Settings, root: Path) -> dict[str, Any]:
    return {
        "file": post.path.relative_to(root).as_posix(),
        "slug": post.slug,
        "title": post.title,
        "date": post.date.isoformat(),
        "updated": post.updated.isoformat() if post.updated else None,
        "expires": post.expires.isoformat() if post.expires else None,
        "url": post.url,
        "author": list(post.authors),
        "categories": list(post.categories),
        "tags": list(post.tags),
        "cover": {"url": post.cover.url, "alt": post.cover.alt} if post.cover else None,
        "draft": post.draft,
        "excerpt": excerpt_of(post),
        "body_html": body_html(post, settings),
    }


def site_result(root: Path) -> dict[str, Any]:
    settings = apply_generator_defaults(load_settings(cwd=root))
    site = settings.site
    result = read_posts(settings)
    posts = sorted(result.posts, key=lambda p: p.path.as_posix())
    return {
        "generator": site.generator,
        "defaults": {
            "content": list(site.content),
            "url": site.url,
            "permalink": site.permalink,
            "timezone": site.timezone,
            "name": site.name,
            "language": site.language,
            "values": sorted(site.values),
        },
        "posts": [post_data(p, settings, root) for p in posts],
        "warnings": sorted(_rel(w.format(), root) for w in result.warnings),
        "errors": sorted(_rel(e.format(), root) for e in result.errors),
    }


@pytest.mark.parametrize("case", CASES)
def test_site_golden(case: str, tmp_path: Path, update_golden: bool) -> None:
    root = tmp_path / case
    shutil.copytree(SITES / case, root)
    got = site_result(root.resolve())
    expected_path = SITES / f"{case}.json"
    if update_golden:
        expected_path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert expected_path.exists(), f"no expectation {expected_path}; run pytest --update-golden"
    assert got == json.loads(expected_path.read_text("utf-8"))


def test_every_generator_has_a_golden_site() -> None:
    from newsletter.content.generators import GENERATORS

    assert sorted(GENERATORS) == CASES


def test_newsletter_toml_and_flags_win_over_the_generator(tmp_path: Path) -> None:
    root = tmp_path / "hugo"
    shutil.copytree(SITES / "hugo", root)
    (root / "newsletter.toml").write_text(
        '[site]\nurl = "https://mail.example.net"\n[site.values]\nauthor = "Mail Desk"\n', "utf-8"
    )
    settings = apply_generator_defaults(
        load_settings(cwd=root, overrides={"site.timezone": "Asia/Tokyo"})
    )
    assert settings.site.generator == "hugo"
    assert settings.site.url == "https://mail.example.net"  # the file
    assert settings.site.timezone == "Asia/Tokyo"  # the flag
    assert settings.site.permalink == "/:year/:month/:slug/"  # hugo.toml
    assert settings.site.values["author"] == "Mail Desk"
    assert settings.site.values["mainSections"] == ["posts"]


def test_generator_can_be_named_or_turned_off(tmp_path: Path) -> None:
    root = tmp_path / "zola"
    shutil.copytree(SITES / "zola", root)
    off = apply_generator_defaults(load_settings(cwd=root, overrides={"site.generator": "none"}))
    assert (off.site.generator, off.site.url) == ("none", "https://example.com")
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        apply_generator_defaults(load_settings(cwd=root, overrides={"site.generator": "gatsby"}))
    assert err.value.format() == (
        "site.generator: unknown generator 'gatsby'; use one of: auto, pelican, mkdocs, "
        "docusaurus, astro, eleventy, jekyll, hugo, zola, none"
    )


def test_hugo_expiry_date_leaves_the_post_out_from_that_moment(tmp_path: Path) -> None:
    from datetime import datetime

    from newsletter.selection import Criteria, Reason, select

    root = tmp_path / "hugo"
    shutil.copytree(SITES / "hugo", root)
    settings = apply_generator_defaults(load_settings(cwd=root))
    posts = read_posts(settings).posts
    before = select(posts, Criteria(), now=datetime.fromisoformat("2025-10-30T23:00:00-05:00"))
    after = select(posts, Criteria(), now=datetime.fromisoformat("2025-10-31T00:00:00-05:00"))
    assert sorted(p.slug for p in before.selected) == ["bridge", "river-walk"]
    assert [(p.slug, r) for p, r in after.skipped] == [("bridge", Reason.EXPIRED)]


def test_cli_in_a_zola_site_with_no_newsletter_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    root = tmp_path / "zola"
    shutil.copytree(SITES / "zola", root)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(main, ["posts", "--now", "2025-12-01", "--json"])
    assert result.exit_code == 0, result.output
    urls = [p["url"] for p in json.loads(result.stdout)]
    assert urls == [
        "https://tern.example.org/blog/kites/",
        "https://tern.example.org/blog/lanterns/",
        "https://tern.example.org/2025/02/13/press-1.2/",
    ]
    undated = root.resolve() / "content" / "blog" / "undated.md"
    assert result.stderr.splitlines() == [
        "note: read as a Zola site (config.toml): posts in content/blog, URLs "
        "https://tern.example.org/blog/:slug/",
        f"error: {undated}:2: no date; add 'date = 2026-03-01' to the front matter or prefix "
        "the file name with YYYY-MM-DD-",
    ]
