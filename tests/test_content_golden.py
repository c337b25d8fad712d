"""Golden pairs: every ``tests/golden/posts/**/<case>.md`` beside its expected ``<case>.json``.

The posts are copied to a temporary content folder and read together (so ``{% post_url %}`` can
find its target). A missing or different expectation fails; ``pytest --update-golden`` rewrites
them (review the diff).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings, SiteSettings
from newsletter.content import ReadResult, body_html, excerpt_html, excerpt_of, read_posts

GOLDEN = Path(__file__).parent / "golden" / "posts"
CASES = sorted(p.relative_to(GOLDEN) for p in GOLDEN.rglob("*.md"))


def golden_settings(root: Path) -> Settings:
    site = SiteSettings(
        name="Golden Site",
        url="https://golden.example.org",
        permalink="/news/:year/:month/:slug/",
        timezone="America/Los_Angeles",
        content=("posts",),
        values={
            "venue": "Harbour Hall",
            "tickets_url": "/tickets/",
            "social": {"mastodon": "@golden@example.social"},
        },
    )
    return Settings(root=root, site=site)


@pytest.fixture(scope="module")
def golden_read(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReadResult, Settings, Path]:
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(GOLDEN, root / "posts", ignore=shutil.ignore_patterns("*.json"))
    settings = golden_settings(root)
    return read_posts(settings), settings, root / "posts"


def actual(case: Path, read: tuple[ReadResult, Settings, Path]) -> dict[str, Any]:
    result, settings, folder = read
    path = folder / case
    errors = [
        e.format().replace(str(folder), "posts") for e in result.errors if e.path == str(path)
    ]
    assert not errors, errors
    (post,) = [p for p in result.posts if p.path == path]
    return {
        "slug": post.slug,
        "title": post.title,
        "date": post.date.isoformat(),
        "url": post.url,
        "author": list(post.authors),
        "categories": list(post.categories),
        "tags": list(post.tags),
        "cover": {"url": post.cover.url, "alt": post.cover.alt} if post.cover else None,
        "excerpt": excerpt_of(post),
        "draft": post.draft,
        "body_line": post.body_line,
        "body_html": body_html(post, settings),
        "excerpt_html": excerpt_html(post, settings),
        "warnings": [
            w.format().replace(str(folder), "posts") for w in result.warnings if w.path == str(path)
        ],
    }


@pytest.mark.parametrize("case", CASES, ids=[c.as_posix() for c in CASES])
def test_golden_post(
    case: Path, golden_read: tuple[ReadResult, Settings, Path], update_golden: bool
) -> None:
    got = actual(case, golden_read)
    expected_path = GOLDEN / case.with_suffix(".json")
    if update_golden:
        expected_path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", "utf-8")
    assert expected_path.exists(), (
        f"missing expectation {expected_path}; run pytest --update-golden"
    )
    expected = json.loads(expected_path.read_text("utf-8"))
    assert got == expected


def test_every_expectation_has_a_post() -> None:
    orphans = [p for p in GOLDEN.rglob("*.json") if not p.with_suffix(".md").exists()]
    assert orphans == []


def test_no_template_syntax_reaches_html(golden_read: tuple[ReadResult, Settings, Path]) -> None:
    result, settings, _ = golden_read
    for post in result.posts:
        markup = body_html(post, settings) + excerpt_html(post, settings)
        assert "{{" not in markup and "{%" not in markup, post.path
