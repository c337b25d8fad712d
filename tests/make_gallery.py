"""``make screenshots``: the gallery in docs/gallery/ (default theme, 600 and 375 px, light and
dark), taken in the same headless Chromium the tests use."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from email_browser_helpers import ROOT, chromium, open_email, sample_issues


def main(out: Path = ROOT / "docs" / "gallery") -> None:
    out.mkdir(parents=True, exist_ok=True)
    issues = sample_issues()
    with chromium() as browser:
        for name in ("blast", "digest", "code"):
            html, _ = issues[name]
            for width in (600, 375):
                for scheme in ("light", "dark"):
                    page = open_email(browser, html, width=width, scheme=scheme)
                    path = out / f"{name}-{width}-{scheme}.png"
                    page.screenshot(path=str(path), full_page=True, type="png")
                    page.close()
                    print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "gallery")
