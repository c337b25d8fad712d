"""The plain-text part: wrapped lines, marked headings, lists, indented code, numbered links."""

from __future__ import annotations

import random
import re
import textwrap

from newsletter.textpart import post_text, wrap

LONG_URL = "https://docs.example.org/" + "a-very-long-path-segment/" * 5


def test_wrap_keeps_urls_whole() -> None:
    text = "See " + LONG_URL + " for the details of the migration and the rollback plan. " * 3
    lines = wrap(text).splitlines()
    assert LONG_URL in lines
    assert all(len(line) <= 76 for line in lines if line != LONG_URL)
    assert max(len(line) for line in lines if line != LONG_URL) >= 60  # filled, not ragged


def _textwrap_reference(text: str, width: int, first: str, rest: str) -> str:
    """What wrap() returned when it called the standard library."""
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return first.rstrip()
    return textwrap.fill(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def test_wrap_fills_lines_as_textwrap_does() -> None:
    rng = random.Random(11)
    words = ["a", "an", "the", "well-known", "co-operate", "é", "naïve", "x" * 20, "y" * 80]
    words += [LONG_URL, "", " ", "\t", "\n", "\xa0", "\u2028", "\x1c", "end.", "(aside)"]
    for _ in range(3000):
        gaps = [" ", " ", "  ", "\n", ""]
        text = "".join(rng.choice(words) + rng.choice(gaps) for _ in range(30))
        width = rng.choice([1, 8, 20, 40, 72, 76])
        first, rest = rng.choice([("", ""), ("- ", "  "), ("> 1. ", ">    "), ("x" * 30, "")])
        expected = _textwrap_reference(text, width, first, rest)
        assert wrap(text, width, first=first, rest=rest) == expected, (text, width, first)


def test_structure_survives() -> None:
    html = (
        "<h2>Setup</h2><p>Read <a href='https://a.example/guide'>the guide</a> and "
        "<a href='https://a.example/faq'>the FAQ</a>, then <a href='https://a.example/guide'>"
        "the guide</a> again.</p>"
        "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul><ol><li>first</li><li>second</li></ol>"
        "<pre>def f():\n    return 1  # a comment long enough to go past the 76th column, unbroken"
        "</pre>"
        "<blockquote><p>Quoted words.</p></blockquote>"
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
        f"<p><a href='{LONG_URL}'>{LONG_URL}</a></p>"
    )
    text = post_text(html)
    assert "## Setup" in text
    assert "Read the guide [1] and the FAQ [2], then the guide [1] again." in text
    assert "- one\n- two\n  - nested" in text
    assert "1. first\n2. second" in text
    assert "\n    def f():\n        return 1  # a comment long enough" in text
    assert "> Quoted words." in text
    assert "a | b\n-----\n1 | 2" in text
    assert text.endswith("Links:\n[1] https://a.example/guide\n[2] https://a.example/faq")
    assert text.count("https://a.example/guide") == 1  # each URL once
    assert text.count(LONG_URL) == 1  # a bare URL is written out, not numbered
    for line in text.splitlines():
        assert len(line) <= 76 or "://" in line or line.startswith("    "), line
