"""The preview page in real headless Chromium: widths, tabs, and live reload without a refresh.

Skipped only when no Chromium is installed and NEWSLETTER_REQUIRE_CHROMIUM is unset (CI sets it,
so there a missing Chromium fails the test instead).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from email_browser_helpers import CHROMIUM, chromium
from preview_helpers import copy_site, running_preview

if CHROMIUM is None and not os.environ.get("NEWSLETTER_REQUIRE_CHROMIUM"):
    pytest.skip("no chromium found (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _block_outside(page: Any, base: str) -> None:
    """Only 127.0.0.1 is reachable in tests: images on the example domain are aborted."""
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(base) else route.abort(),
    )


def test_preview_in_chromium(browser: Any, tmp_path: Path, project_root: Path) -> None:
    config = copy_site(project_root, tmp_path)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with running_preview(config, "--post", "2026-10-05-conference-wrap-up") as url:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        _block_outside(page, url)
        page.goto(url + "/")
        frame = page.frame_locator("#frame")
        frame.locator("text=2026 Conference Wrap-Up").first.wait_for(timeout=10000)
        page.evaluate("window.__notReloaded = true")

        # desktop: the email is 600 px wide
        page.screenshot(path=str(shots / "desktop-600.png"), full_page=True)
        width = page.locator("#frame").evaluate(
            "f => f.contentDocument.documentElement.scrollWidth"
        )
        assert width >= 600

        # mobile: 375 px, nothing overflows horizontally
        page.click("#mobile")
        page.wait_for_function(
            "document.getElementById('frame').getBoundingClientRect().width === 375"
        )
        page.screenshot(path=str(shots / "mobile-375.png"), full_page=True)
        overflow = page.locator("#frame").evaluate(
            """f => {
                const d = f.contentDocument;
                const wide = [...d.querySelectorAll('body *')].filter(
                    e => e.getBoundingClientRect().right > f.clientWidth + 1);
                return {scroll: d.documentElement.scrollWidth, client: f.clientWidth,
                        wide: wide.slice(0, 3).map(e => e.tagName)};
            }"""
        )
        assert overflow["scroll"] <= 375 and overflow["wide"] == [], overflow
        assert (shots / "desktop-600.png").stat().st_size > 10_000
        assert (shots / "mobile-375.png").stat().st_size > 10_000

        # tabs
        page.click("button[data-tab=text]")
        assert page.locator("#tab-text").is_visible()
        assert not page.locator("#tab-email").is_visible()
        assert "on the website:\nhttps://" in page.locator("#text").inner_text()
        page.click("button[data-tab=headers]")
        assert "List-Unsubscribe-Post" in page.locator("#headers").inner_text()
        page.click("button[data-tab=source]")
        assert "<html" in page.locator("#source").inner_text()
        page.click("button[data-tab=lint]")
        # the post's WebP photo is the one finding (Outlook for Windows does not show WebP)
        lint = page.locator("#lint").inner_text()
        assert "[image-format]" in lint and "lightning-talks-2026.webp" in lint
        page.click("button[data-tab=email]")
        page.click("#desktop")

        # editing the post updates the page with no reload
        post = tmp_path / "content" / "2026-10-05-conference-wrap-up.md"
        post.write_text(
            post.read_text(encoding="utf-8").replace(
                "That's a wrap!", "That's a wrap, truly and utterly!"
            ),
            encoding="utf-8",
        )
        page.wait_for_function(
            "(document.getElementById('frame').contentDocument.body || {innerText: ''})"
            ".innerText.includes('truly and utterly')",
            timeout=5000,
        )
        assert page.evaluate("window.__notReloaded") is True
        page.click("button[data-tab=text]")
        page.wait_for_function(
            "document.getElementById('text').textContent.includes('truly and utterly')",
            timeout=5000,
        )

        # a template error shows on the page; fixing it clears it
        broken = tmp_path / "templates" / "post.mjml.j2"
        broken.write_text("{% extends 'base.mjml.j2' %}{% block content %}{% if %}", "utf-8")
        page.locator("#error").wait_for(state="visible", timeout=5000)
        assert "post.mjml.j2:1" in page.locator("#error").inner_text()
        broken.unlink()
        page.locator("#error").wait_for(state="hidden", timeout=5000)
        assert page.evaluate("window.__notReloaded") is True
