"""Rendered emails in headless Chromium: the three sample issues (a blast, a digest and a code-
and table-heavy post), a page per width and colour scheme, and the checks the design promises.

Used by tests/test_email_chromium.py and by ``make screenshots`` (tests/make_gallery.py).
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsletter.config import Settings, load_settings
from newsletter.content import Post, read_posts
from newsletter.render import generic_values, personalize_email, render_issue
from newsletter.theme import ThemeSettings

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 1, 17, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

CODE_POST = """\
Upgrading the scheduler meant touching three services. Here is what changed, with the
commands we ran, so you can do the same on your own deployment.

## The new configuration

Set `max_workers` in `scheduler.toml`; the old `--threads` flag is gone:

```toml
[scheduler]
max_workers = 8            # was --threads 8
queue = "redis://queue.internal:6379/0"
retry_backoff_seconds = [1, 5, 30, 120, 600]  # a long line that must scroll, not wrap
```

Then restart and watch the log:

```console
$ systemctl restart scheduler && journalctl -u scheduler -f --since "1 min ago" --output=short-iso
2026-10-14T09:12:03+0000 scheduler[811]: started 8 workers (queue=redis://queue.internal:6379/0)
```

### Timings before and after

| Job | Before (s) | After (s) | Change |
|-----|-----------:|----------:|--------|
| nightly-export | 412 | 138 | 3.0x faster |
| thumbnail-rebuild | 1 904 | 611 | 3.1x faster |
| search-reindex | 233 | 229 | unchanged |

> Measure before you tune: the reindex job was never CPU-bound.

1. Back up `scheduler.toml`.
2. Apply the new settings.
3. Restart, then compare the timings above.

---

Questions? Reply to this email or read [the upgrade guide](https://docs.example.org/upgrade/).
"""


def example_settings(inliner: str = "premailer", theme: ThemeSettings | None = None) -> Settings:
    settings = load_settings(ROOT / "newsletter.toml")
    return dataclasses.replace(
        settings,
        email=dataclasses.replace(settings.email, inliner=inliner),
        theme=theme or settings.theme,
    )


def sample_issues(
    inliner: str = "premailer", theme: ThemeSettings | None = None
) -> dict[str, tuple[str, str]]:
    """name -> (html filled for a generic reader, text part) of the three sample emails."""
    settings = example_settings(inliner, theme)
    posts = sorted(
        (p for p in read_posts(settings).posts if not p.draft and p.date <= NOW),
        key=lambda p: p.date,
        reverse=True,
    )
    blast = next(p for p in posts if p.slug.endswith("conference-wrap-up"))
    code = Post(
        path=ROOT / "content" / "scheduler-upgrade.md",
        slug="scheduler-upgrade",
        title="Upgrading the scheduler: settings, commands and timings",
        date=datetime(2026, 10, 14, 9, 0, tzinfo=UTC),
        url=settings.site.url + "/news/2026/scheduler-upgrade/",
        authors=("Ines Duarte",),
        excerpt="What changed in the scheduler upgrade, with the commands we ran.",
        body=CODE_POST,
        markdown=CODE_POST,
    )
    out = {}
    for name, chosen, layout in (
        ("blast", [blast], "post"),
        ("digest", posts[:6], "digest"),
        ("code", [code], "post"),
    ):
        issue = render_issue(chosen, settings, layout=layout, now=NOW)
        _, html, text = personalize_email(issue, generic_values(settings))
        out[name] = (html, text)
    return out


def _png(width: int, height: int) -> bytes:
    """A small PNG written by hand (stands in for the posts' photos): a sea-and-sand picture in
    flat bands, so the gallery screenshots compress well."""
    rows = []
    for y in range(height):
        band = (46, 94, 140) if y < height * 0.55 else (72, 140, 160)
        if y > height * 0.8:
            band = (214, 196, 150)
        rows.append(bytes([0]) + bytes(band) * width)
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


PHOTO = _png(240, 135)
LOGO = _png(140, 40)


def serve_images(page: Any, *, blocked: bool = False) -> None:
    """No request leaves the machine: every image is answered with a local PNG (or refused, as
    a client that blocks images does)."""

    def handle(route: Any) -> None:
        url = route.request.url
        if route.request.resource_type == "image" and not blocked:
            route.fulfill(
                status=200, content_type="image/png", body=LOGO if "logo" in url else PHOTO
            )
        else:
            route.abort()

    page.route("**/*", handle)


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_email(browser: Any, html: str, *, width: int, scheme: str, images: bool = True) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    serve_images(page, blocked=not images)
    page.set_content(html, wait_until="load")
    return page


# For every element with its own visible text: its colour and the background it is read on
# (the first opaque background up the tree, semi-transparent ones blended in).
CONTRAST_JS = r"""
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = ([r, g, b]) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const blend = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
    }
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    const canvas = dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
    let base = layers.length && layers[layers.length - 1][3] >= 1 ? layers.pop() : canvas;
    while (layers.length) base = blend(layers.pop(), base);
    return base;
  };
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    // an image that did not load shows its alt text in its own colour
    const alt = el.tagName === "IMG" && el.complete && el.naturalWidth === 0 && el.alt.trim();
    const own = alt || [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    const fg = parse(getComputedStyle(el).color);
    const bg = background(el);
    const color = fg[3] < 1 ? blend(fg, bg) : fg;
    const [a, b] = [lum(color), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    out.push({
      tag: el.tagName, text: (alt || el.textContent).trim().slice(0, 50),
      ratio: Math.round(ratio * 100) / 100, color: getComputedStyle(el).color,
      background: "rgb(" + bg.slice(0, 3).join(",") + ")",
    });
  }
  return out;
}
"""

OVERFLOW_JS = """
() => ({
  scroll: document.documentElement.scrollWidth,
  client: document.documentElement.clientWidth,
})
"""

IMAGES_JS = """
() => [...document.images].map((i) => ({ src: i.src, width: i.getAttribute("width"),
  shown: i.getBoundingClientRect().width, natural: i.naturalWidth }))
"""
