"""The rendered emails in real headless Chromium, at 600 and 375 px, light and dark: every
visible text readable (WCAG 4.5:1 against the background it sits on), nothing wider than a phone,
the doctype (standards mode), pixel image widths, and no path from the operator's disk.

Skipped only when no Chromium is installed and NEWSLETTER_REQUIRE_CHROMIUM is unset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from email_browser_helpers import (
    CHROMIUM,
    CONTRAST_JS,
    IMAGES_JS,
    OVERFLOW_JS,
    ROOT,
    chromium,
    open_email,
    sample_issues,
)

from newsletter.theme import ThemeSettings

if CHROMIUM is None and not os.environ.get("NEWSLETTER_REQUIRE_CHROMIUM"):
    pytest.skip("no chromium found (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def issues() -> dict[str, tuple[str, str]]:
    return sample_issues("css-inline")


@pytest.fixture(scope="module")
def premailer_issues() -> dict[str, tuple[str, str]]:
    return sample_issues("premailer")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [600, 375])
@pytest.mark.parametrize("name", ["blast", "digest", "code"])
def test_readable_and_fits(
    browser: Any, issues: dict[str, tuple[str, str]], name: str, width: int, scheme: str
) -> None:
    _check(browser, issues[name][0], width, scheme)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", ["blast", "digest", "code"])
def test_readable_and_fits_with_premailer(
    browser: Any, premailer_issues: dict[str, tuple[str, str]], name: str, scheme: str
) -> None:
    _check(browser, premailer_issues[name][0], 375, scheme)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_alt_text_is_readable_when_images_are_blocked(
    browser: Any, issues: dict[str, tuple[str, str]], scheme: str
) -> None:
    page = open_email(browser, issues["digest"][0], width=600, scheme=scheme, images=False)
    try:
        alts = [t for t in page.evaluate(CONTRAST_JS) if t["tag"] == "IMG"]
    finally:
        page.close()
    assert len(alts) >= 4  # the logo, the lead's cover and the thumbnails
    assert [t for t in alts if t["ratio"] < 4.5] == []


@pytest.mark.parametrize("button", ["outline", "link"])
def test_another_theme_stays_readable(browser: Any, button: str) -> None:
    """A brand's own colours, the site name as header, other button styles: still readable."""
    theme = ThemeSettings(
        accent="#7a1f5c",
        dark_accent="#f0a8d0",
        background="#fbf7f2",
        text="#2a2420",
        muted="#5e544c",
        dark_background="#1a1512",
        dark_surface="#24201c",
        font_family="Georgia, 'Times New Roman', serif",
        header="name",
        button=button,
        logo_dark_url="https://northbay-pyconf.example.org/assets/img/logo-dark.png",
    )
    html, _ = sample_issues("css-inline", theme)["digest"]
    for scheme in ("light", "dark"):
        page = open_email(browser, html, width=375, scheme=scheme)
        try:
            poor = [t for t in page.evaluate(CONTRAST_JS) if t["ratio"] < 4.5]
        finally:
            page.close()
        assert poor == [], (scheme, poor)


def test_the_check_sees_poor_contrast(browser: Any) -> None:
    """The issue's dark-mode code block (#e6edf3 on #f4f4f5) fails the same check."""
    page = browser.new_page(viewport={"width": 375, "height": 600})
    page.set_content(
        '<!doctype html><body style="background:#161b22"><div style="background:#f4f4f5">'
        '<pre style="color:#e6edf3">print("hi")</pre></div><p style="color:#e6edf3">ok</p>'
    )
    texts = {t["text"]: t["ratio"] for t in page.evaluate(CONTRAST_JS)}
    page.close()
    assert texts['print("hi")'] < 1.2 and texts["ok"] > 10


def _check(browser: Any, html: str, width: int, scheme: str) -> None:
    page = open_email(browser, html, width=width, scheme=scheme)
    try:
        assert page.evaluate("document.compatMode") == "CSS1Compat"  # the doctype is there
        texts = page.evaluate(CONTRAST_JS)
        assert len(texts) > 15  # the check saw the email, not an empty page
        poor = [t for t in texts if t["ratio"] < 4.5]
        assert poor == [], poor
        size = page.evaluate(OVERFLOW_JS)
        assert size["scroll"] <= size["client"], size  # code and tables scroll in their own box
        for image in page.evaluate(IMAGES_JS):
            width_attr = image["width"] or ""
            assert width_attr.isdigit(), image  # Outlook for Windows sizes images by it
            assert 0 < image["shown"] <= width, image
    finally:
        page.close()


def test_dark_mode_changes_the_page(browser: Any, issues: dict[str, tuple[str, str]]) -> None:
    """Not only the cards: the page around them turns dark too."""
    html, _ = issues["digest"]
    colours = {}
    for scheme in ("light", "dark"):
        page = open_email(browser, html, width=600, scheme=scheme)
        colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.close()
    assert colours["light"] == "rgb(243, 244, 246)"
    assert colours["dark"] == "rgb(13, 17, 23)"


@pytest.mark.parametrize(("width", "scheme"), [(600, "light"), (375, "light"), (375, "dark")])
def test_the_signup_confirmation_is_readable_and_dark_all_over(
    browser: Any, width: int, scheme: str
) -> None:
    from newsletter.config import load_settings
    from newsletter.personalize import CONFIRM_URL
    from newsletter.signup.mail import ConfirmationEmail

    email = ConfirmationEmail.render(load_settings(ROOT / "newsletter.toml"))
    html = email.html.replace(CONFIRM_URL, "https://news.example.org/subscribe/confirm/AQHr4qMO0j")
    page = open_email(browser, html, width=width, scheme=scheme)
    try:
        texts = page.evaluate(CONTRAST_JS)
        assert len(texts) >= 5
        assert [t for t in texts if t["ratio"] < 4.5] == []
        size = page.evaluate(OVERFLOW_JS)
        assert size["scroll"] <= size["client"], size
        # a short email leaves page below it: that page is dark too, not a light band
        body = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert body == ("rgb(13, 17, 23)" if scheme == "dark" else "rgb(243, 244, 246)")
    finally:
        page.close()


def test_no_source_paths(issues: dict[str, tuple[str, str]]) -> None:
    for html, text in issues.values():
        for part in (html, text):
            assert str(ROOT) not in part and "content/" not in part and "<!-- source" not in part
