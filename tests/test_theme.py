"""``[theme]`` in newsletter.toml: read, validated (colours, contrast, styles), and used."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.content import Cover, Post
from newsletter.errors import ConfigError
from newsletter.render import render_issue
from newsletter.theme import ThemeSettings, contrast_problems, contrast_ratio

NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
BASE = """
[site]
name = "Harbour Notes"
url = "https://harbour.example.org"
[email]
postal_address = "Harbour Notes, 2 Pier St"
"""


def _config(tmp_path: Path, theme: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(BASE + "[theme]\n" + theme, encoding="utf-8")
    return path


def low_tide(tmp_path: Path, markdown: str, cover: Cover | None = None) -> Post:
    """A post whose body is ``markdown`` (used as is for the HTML body too)."""
    return Post(
        path=tmp_path / "p.md",
        slug="p",
        title="Low tide",
        date=NOW,
        url="https://harbour.example.org/p/",
        excerpt="x",
        body=markdown,
        markdown=markdown,
        cover=cover,
    )


def test_contrast_ratio_matches_wcag() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#fff", "#fff") == pytest.approx(1.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_problems(ThemeSettings()) == []


@pytest.mark.parametrize(
    ("theme", "key", "words"),
    [
        ('muted = "#aaaaaa"', "theme.muted", "2.32:1"),
        ('dark_text = "#444444"', "theme.dark_text", "pick a lighter colour"),
        ('accent = "#ffcc00"', "theme.accent", "4.5:1"),
        ('accent = "blue"', "theme.accent", "not a colour"),
        ('button = "round"', "theme.button", "filled, outline, link"),
        ("font_size = 9", "theme.font_size", "14 to 24"),
        ('logo_url = "http://harbour.example.org/logo.png"', "theme.logo_url", "https://"),
        ('web_font_name = "Inter"', "theme.web_font_url", "together"),
        ('font_family = "Inter; } body { color: red"', "theme.font_family", "may not contain"),
        ('colour = "#000"', "theme.colour", "unknown setting"),
    ],
)
def test_bad_theme_is_refused_with_file_and_key(
    tmp_path: Path, theme: str, key: str, words: str
) -> None:
    path = _config(tmp_path, theme)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = info.value.format()
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message


def test_theme_reaches_the_email(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        'accent = "#7a1f5c"\nbackground = "#fbf7f2"\nfont_family = "Lora, Georgia, serif"\n'
        'logo_url = "https://harbour.example.org/logo.png"\nlogo_width = 180\n'
        'logo_dark_url = "https://harbour.example.org/logo-dark.png"\nbutton = "outline"\n'
        'web_font_name = "Lora"\nweb_font_url = "https://fonts.example.org/lora.css"\n',
    )
    settings = load_settings(path)
    post = low_tide(
        tmp_path,
        "Text with [a link](https://harbour.example.org/x/).",
        cover=Cover("https://harbour.example.org/c.jpg", "Boats"),
    )
    html = render_issue([post], settings, layout="post", now=NOW).html
    assert "color:#7a1f5c" in html.replace(" ", "")  # links and the outline button
    assert "#fbf7f2" in html
    assert "Georgia, serif" in html
    assert 'width="180"' in html and "logo-dark.png" in html
    assert "border:2px solid #7a1f5c" in html.replace(": ", ":")
    assert "https://fonts.example.org/lora.css" in html
    assert "#1f5fa8" not in html  # the default accent is gone everywhere


def test_default_theme_has_dark_mode_for_every_part(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, ""))
    post = low_tide(tmp_path, "```\ncode\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted")
    html = render_issue([post], settings, layout="post", now=NOW).html
    dark = html[html.index("@media (prefers-color-scheme: dark)") :]
    theme = ThemeSettings()
    for colour in (theme.dark_background, theme.dark_surface, theme.dark_text, theme.dark_muted):
        assert colour in dark
    for selector in (".nl-text pre", ".nl-text th", ".nl-text blockquote", ".nl-foot"):
        assert selector in dark
    assert "[data-ogsc] .nl-card *" in html and "[data-ogsb] .nl-card" in html
