"""``make screenshots``: the gallery in docs/gallery/ (default theme, 600 and 375 px, light and
dark), taken in the same headless Chromium the tests use.

The blast and the digest are the example site's; the code- and table-heavy post is the one the
Chromium tests use. Images are stand-ins served locally (no request leaves the machine). Pass
``--all`` for the code post too, and a folder to write somewhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from email_browser_helpers import ROOT, chromium, open_email, sample_issues

MAX_HEIGHT = 2400  # px: the top of a long digest shows the design; the rest only adds bytes


def main(out: Path, names: tuple[str, ...]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    issues = sample_issues()
    with chromium() as browser:
        for name in names:
            html, _ = issues[name]
            for width in (600, 375):
                for scheme in ("light", "dark"):
                    page = open_email(browser, html, width=width, scheme=scheme)
                    path = out / f"{name}-{width}-{scheme}.png"
                    height = page.evaluate("document.documentElement.scrollHeight")
                    clip = {"x": 0, "y": 0, "width": width, "height": min(height, MAX_HEIGHT)}
                    page.screenshot(path=str(path), full_page=True, clip=clip, type="png")
                    page.close()
                    print(path)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--all"]
    chosen = ("blast", "digest", "code") if "--all" in sys.argv else ("blast", "digest")
    main(Path(args[0]) if args else ROOT / "docs" / "gallery", chosen)
