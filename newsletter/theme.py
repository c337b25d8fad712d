"""The email's look, from ``[theme]`` in ``newsletter.toml``: colours, fonts, logo, header and
button style, validated once when the settings are read.

Every colour and size the templates use comes from here (the templates read ``theme.x``), so
branding an email never means copying a template. :func:`check_theme` refuses colours that are
hard to read: each text colour against the background it sits on must reach WCAG AA (4.5:1), in
the light scheme and in the dark one.

This module is a leaf: it imports nothing from the rest of the package but the errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from newsletter.errors import ConfigError

MIN_CONTRAST = 4.5
HEADERS = ("auto", "logo", "name")
BUTTONS = ("filled", "outline", "link")
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class ThemeSettings:
    """``[theme]``: what an email looks like. Colours are ``#rgb`` or ``#rrggbb``."""

    accent: str = "#1f5fa8"  # links, buttons, the masthead rule
    button_text: str = "#ffffff"  # text on a filled button
    text: str = "#1f2328"
    muted: str = "#57606a"  # dates, authors, captions, the footer
    background: str = "#f3f4f6"  # the page around the cards
    surface: str = "#ffffff"  # the cards
    code_background: str = "#f6f8fa"
    border: str = "#d0d7de"
    dark_accent: str = "#79b8ff"
    dark_button_text: str = "#0d1117"
    dark_text: str = "#e6edf3"
    dark_muted: str = "#9da7b3"
    dark_background: str = "#0d1117"
    dark_surface: str = "#161b22"
    dark_code_background: str = "#0d1117"
    dark_border: str = "#30363d"
    font_family: str = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif"
    heading_font_family: str = ""  # empty: the same as font_family
    code_font_family: str = "SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace"
    web_font_name: str = ""  # e.g. "Inter"; put it first in font_family too
    web_font_url: str = ""  # the font's CSS, e.g. https://fonts.googleapis.com/css2?family=Inter
    font_size: int = 17  # body text, px (headings scale from it)
    width: int = 600  # the email's width, px
    logo_url: str = ""  # empty: site.logo_url
    logo_dark_url: str = ""  # a logo for dark backgrounds (shown by clients that support it)
    logo_width: int = 140  # px
    header: str = "auto"  # auto (logo when there is one) | logo | name (site name + issue title)
    button: str = "filled"  # filled | outline | link
    button_radius: int = 6  # px
    radius: int = 8  # card corners, px

    @property
    def headings(self) -> str:
        return self.heading_font_family or self.font_family

    @property
    def content_width(self) -> int:
        """The width of a card's text column (the width minus 24 px padding each side)."""
        return self.width - 48


def parse_color(value: str) -> tuple[float, float, float]:
    """``#rgb``/``#rrggbb`` as (r, g, b) in 0..1; :class:`ValueError` for anything else."""
    if not _HEX.match(value):
        raise ValueError(value)
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return tuple(int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(
    fg: str | tuple[float, float, float], bg: str | tuple[float, float, float]
) -> float:
    """The WCAG 2 contrast ratio of two colours (1 to 21)."""
    a = _luminance(parse_color(fg) if isinstance(fg, str) else fg)
    b = _luminance(parse_color(bg) if isinstance(bg, str) else bg)
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


# (text colour, the background it is read on); the button pair only counts when it is filled
CONTRAST_PAIRS: tuple[tuple[str, str], ...] = (
    ("text", "surface"),
    ("muted", "surface"),
    ("accent", "surface"),
    ("muted", "background"),
    ("accent", "background"),
    ("text", "code_background"),
    ("dark_text", "dark_surface"),
    ("dark_muted", "dark_surface"),
    ("dark_accent", "dark_surface"),
    ("dark_muted", "dark_background"),
    ("dark_accent", "dark_background"),
    ("dark_text", "dark_code_background"),
)
_BUTTON_PAIRS = (("button_text", "accent"), ("dark_button_text", "dark_accent"))


def contrast_problems(theme: ThemeSettings) -> list[tuple[str, str]]:
    """(key, message) for every text colour under 4.5:1 on its background."""
    pairs = list(CONTRAST_PAIRS)
    if theme.button == "filled":
        pairs += _BUTTON_PAIRS
    out: list[tuple[str, str]] = []
    for fg, bg in pairs:
        a, b = getattr(theme, fg), getattr(theme, bg)
        ratio = contrast_ratio(a, b)
        if ratio < MIN_CONTRAST:
            way = "darker" if _luminance(parse_color(b)) > 0.4 else "lighter"
            out.append(
                (
                    f"theme.{fg}",
                    f"{a} on theme.{bg} ({b}) has a contrast of {ratio:.2f}:1; text needs at "
                    f"least {MIN_CONTRAST}:1 (WCAG AA): pick a {way} colour",
                )
            )
    return out


def check_theme(theme: ThemeSettings, path: Path | str | None) -> ThemeSettings:
    """Refuse a theme that is malformed or hard to read; ``path`` is the config file."""
    for f in fields(theme):
        value = getattr(theme, f.name)
        if isinstance(f.default, str) and f.default.startswith("#"):
            try:
                parse_color(value)
            except ValueError:
                raise ConfigError(
                    f'{value!r} is not a colour; write it as #rrggbb, e.g. "#1f5fa8"',
                    path=path,
                    key=f"theme.{f.name}",
                ) from None
    for key, allowed in (("header", HEADERS), ("button", BUTTONS)):
        if getattr(theme, key) not in allowed:
            raise ConfigError(
                f"{getattr(theme, key)!r} is not a {key} style; use one of: {', '.join(allowed)}",
                path=path,
                key=f"theme.{key}",
            )
    for key, low, high in (
        ("font_size", 14, 24),
        ("width", 480, 800),
        ("logo_width", 16, 600),
        ("button_radius", 0, 40),
        ("radius", 0, 40),
    ):
        value = getattr(theme, key)
        if not low <= value <= high:
            raise ConfigError(
                f"{value} is out of range; use {low} to {high} (pixels)",
                path=path,
                key=f"theme.{key}",
            )
    for key in ("logo_url", "logo_dark_url", "web_font_url"):
        value = getattr(theme, key)
        if value and not value.startswith("https://"):
            raise ConfigError(
                f"{value!r} must be an https:// URL (mail clients block the rest)",
                path=path,
                key=f"theme.{key}",
            )
    if bool(theme.web_font_name) != bool(theme.web_font_url):
        raise ConfigError(
            "set web_font_name and web_font_url together (the font's name and its CSS URL)",
            path=path,
            key="theme.web_font_url" if theme.web_font_name else "theme.web_font_name",
        )
    for font_key in ("font_family", "heading_font_family", "code_font_family", "web_font_name"):
        if any(c in getattr(theme, font_key) for c in '<>{};"'):
            raise ConfigError(
                "a font list may not contain < > { } ; or double quotes; quote names with '",
                path=path,
                key=f"theme.{font_key}",
            )
    problems = contrast_problems(theme)
    if problems:
        key, message = problems[0]
        raise ConfigError(message, path=path, key=key)
    return theme
