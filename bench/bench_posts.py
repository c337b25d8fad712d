"""Read + select 1,000 and 10,000 generated posts, against a bare ``frontmatter.load()`` loop.

Each measurement runs in a fresh subprocess so its peak memory (``ru_maxrss``) is its own; time
counts the work only (not interpreter start-up or imports). Best of 3 runs is shown.
Goal (issue #2): 10,000 posts in under 2 s, within 1.5x of the baseline.
Then a 1,000-entry RSS 2.0 feed (full content in each entry) read from a file, turned into posts
and selected; goal (issue #12): under 1 s.

    .venv/bin/python -m bench posts
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

SIZES = (1_000, 10_000)
FEED_ENTRIES = 1_000
REPEAT = 3
WORDS = [
    "python",
    "conference",
    "talk",
    "speaker",
    "ticket",
    "venue",
    "schedule",
    "volunteer",
    "sponsor",
    "keynote",
    "tutorial",
    "community",
    "harbour",
    "coffee",
    "lunch",
    "caption",
    "video",
    "stream",
    "poster",
    "lightning",
    "café",
    "naïve",
    "🎉",
]


def _paragraphs(rng: random.Random, count: int) -> str:
    paras = []
    for _ in range(count):
        words = rng.choices(WORDS, k=rng.randint(20, 90))
        paras.append(" ".join(words).capitalize() + ". See [the page](/news/page/).")
    return "\n\n".join(paras)


def _front_matter(rng: random.Random, i: int, when: datetime) -> tuple[str, str]:
    """(file name, front matter) in one of several real-world forms."""
    form = i % 6
    title = f"Post number {i}: {rng.choice(WORDS)}"
    day = when.strftime("%Y-%m-%d")
    if form == 0:  # TOML, Hugo
        fm = f'+++\ntitle = "{title}"\ndate = {day}T10:00:00-07:00\ntags = ["a", "b"]\n+++\n'
        return f"post-{i}.md", fm
    if form == 1:  # Jekyll: date in the file name, offset date string
        fm = f'---\ntitle: "{title}"\ndate: {day} 10:00:00 +0200\ncategories: News, Talks\n---\n'
        return f"{day}-post-{i}.md", fm
    if form == 2:  # seed style
        fm = (
            f'---\ntitle: "{title}"\nlayout: post\nauthor: Team\ncategory: General\n'
            f"published_datetime: {day} 06:00:00\ncover:\n    url: /img/{i}.jpg\n"
            '    alt: "A photo"\n---\n'
        )
        return f"post-{i}.md", fm
    if form == 3:  # Astro
        fm = f'---\ntitle: "{title}"\npubDate: "{day}T09:00:00Z"\ntags: [x, y, z]\n---\n'
        return f"post-{i}.md", fm
    if form == 4:  # Eleventy with a draft flag and summary
        fm = f'---\ntitle: "{title}"\ndate: {day}\ndraft: {str(i % 10 == 4).lower()}\n'
        fm += "summary: A short summary.\n---\n"
        return f"post-{i}.md", fm
    fm = f'---\ntitle: "{title}"\ndate: "{day}T12:00:00+01:00"\nimage: /img/{i}.png\n---\n'
    return f"post-{i}.md", fm


def generate(folder: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(count):
        when = datetime(2020 + i % 7, 1 + i % 12, 1 + i % 28)
        name, fm = _front_matter(rng, i, when)
        size = rng.choice((1, 2, 3, 5, 8, 20))  # paragraphs: mostly short, a few long posts
        body = _paragraphs(rng, size)
        if i % 9 == 0:
            body += "\n\n<!--more-->\n\nMore text with {{ site.venue }}."
        sub = folder / f"y{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / name).write_text(fm + "\n" + body + "\n", "utf-8")


def generate_feed(path: Path, count: int, seed: int = 11) -> None:
    """An RSS 2.0 feed of ``count`` entries, each with a few paragraphs of HTML content."""
    from html import escape

    rng = random.Random(seed)
    items = []
    for i in range(count):
        when = datetime(2020 + i % 7, 1 + i % 12, 1 + i % 28, 9, 30)
        paras = "".join(
            f"<p>{escape(' '.join(rng.choices(WORDS, k=40)))} <a href='/p/{i}/'>more</a></p>"
            for _ in range(rng.choice((1, 2, 3, 5)))
        )
        items.append(
            f"<item><title>Entry {i}: {rng.choice(WORDS)}</title>"
            f"<link>https://blog.example.org/{when:%Y/%m}/entry-{i}/</link>"
            f"<guid>https://blog.example.org/?p={i}</guid>"
            f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} +0000</pubDate>"
            f"<category>News</category><description>Entry {i} summary.</description>"
            f"<content:encoded><![CDATA[{paras}]]></content:encoded></item>"
        )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>Bench</title><link>https://blog.example.org/</link>"
        + "".join(items)
        + "</channel></rss>",
        "utf-8",
    )


def worker(mode: str, folder: str) -> None:
    """Runs in the subprocess; prints {"seconds", "maxrss_kb", "count"} as JSON."""
    root = Path(folder)
    extra: dict[str, float] = {}
    if mode == "feed":
        from newsletter.config import Settings, SiteSettings
        from newsletter.content.feeds import read_feeds
        from newsletter.selection import Criteria, select

        feed = Path(folder) / "feed.xml"
        settings = Settings(root=root, site=SiteSettings(url="https://blog.example.org"))
        now = datetime.fromisoformat("2026-11-26T12:00:00+00:00")
        start = time.perf_counter()
        result = read_feeds([str(feed)], settings)
        selection = select(result.posts, Criteria(limit=20), now=now)
        seconds = time.perf_counter() - start
        count = len(selection.selected) + len(selection.skipped)
        assert not result.errors, result.errors[0].format()
    elif mode == "frontmatter":
        import frontmatter

        # the loop a user would write: find the files, load each, keep the results
        start = time.perf_counter()
        loaded = [frontmatter.load(p) for p in sorted(root.rglob("*.md"))]
        seconds = time.perf_counter() - start
        count = len(loaded)
    else:
        from newsletter.config import Settings, SiteSettings
        from newsletter.content import read_posts
        from newsletter.selection import Criteria, select

        settings = Settings(
            root=root,
            site=SiteSettings(
                url="https://example.org",
                permalink="/news/:year/:slug/",
                timezone="America/Los_Angeles",
                content=(".",),
                values={"venue": "Harbour Hall"},
            ),
        )
        now = datetime.fromisoformat("2026-11-26T12:00:00-08:00")
        start = time.perf_counter()
        result = read_posts(settings)
        selection = select(result.posts, Criteria(limit=20), now=now)
        seconds = time.perf_counter() - start
        count = len(selection.selected) + len(selection.skipped)
        assert not result.errors, result.errors[0].format()
        from newsletter.content import body_html

        start = time.perf_counter()
        for post in selection.selected:  # Markdown is rendered only for the posts an email needs
            body_html(post, settings)
        extra = {
            "render_ms": (time.perf_counter() - start) * 1000,
            "rendered": len(selection.selected),
        }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "maxrss_kb": peak, "count": count, **extra}))


def _measure(mode: str, folder: Path) -> dict[str, float]:
    runs = []
    for _ in range(REPEAT):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from bench.bench_posts import worker; worker({mode!r}, {str(folder)!r})",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        runs.append(json.loads(out.stdout))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "maxrss_kb": max(r["maxrss_kb"] for r in runs)}


def run() -> None:
    print(f"{'posts':>7}  {'what':<24} {'time (best of 3)':>16} {'peak RSS':>10}")
    with tempfile.TemporaryDirectory(prefix="bench-posts-") as tmp:
        for count in SIZES:
            folder = Path(tmp) / str(count)
            generate(folder, count)
            base = _measure("frontmatter", folder)
            ours = _measure("newsletter", folder)
            assert base["count"] == ours["count"] == count
            for label, r in (("frontmatter.load() loop", base), ("read_posts + select", ours)):
                mb = r["maxrss_kb"] / 1024
                print(f"{count:>7}  {label:<24} {r['seconds']:>14.3f} s {mb:>7.1f} MB")
            ratio = ours["seconds"] / base["seconds"]
            print(f"{count:>7}  ratio ours/baseline      {ratio:>14.2f} x")
            print(
                f"{count:>7}  then body_html() for the {ours['rendered']:.0f} selected posts: "
                f"{ours['render_ms']:.1f} ms"
            )
    print("goal: 10,000 posts < 2 s and ratio <= 1.5x")
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as tmp:
        generate_feed(Path(tmp) / "feed.xml", FEED_ENTRIES)
        size = (Path(tmp) / "feed.xml").stat().st_size / 1024 / 1024
        feed = _measure("feed", Path(tmp))
        assert feed["count"] == FEED_ENTRIES
        print(
            f"{FEED_ENTRIES:>7}  feed entries ({size:.1f} MB RSS) read + select "
            f"{feed['seconds']:>6.3f} s {feed['maxrss_kb'] / 1024:>7.1f} MB"
        )
    print("goal: a 1,000-entry feed < 1 s")
