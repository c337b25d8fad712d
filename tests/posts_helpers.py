"""A small site on disk (newsletter.toml + content/) and ``newsletter posts`` run against it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from newsletter.cli import main

CONFIG = """\
[site]
name = "Test Site"
url = "https://example.org"
permalink = "/:year/:slug/"
timezone = "UTC"
content = ["content"]
"""
GOOD = "---\ntitle: Good\ndate: 2026-01-01\n---\nbody\n"


def make_site(tmp_path: Path, files: dict[str, str | bytes], *, good: bool = True) -> Path:
    """The site in ``tmp_path``; ``good`` adds one readable post (good.md)."""
    (tmp_path / "newsletter.toml").write_text(CONFIG, "utf-8")
    content = tmp_path / "content"
    content.mkdir()
    for name, text in {**({"good.md": GOOD} if good else {}), **files}.items():
        target = content / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, "utf-8")
    return tmp_path


def run(site: Path, *args: str) -> Result:
    config = str(site / "newsletter.toml")
    return CliRunner().invoke(main, ["--config", config, "posts", "--now", "2026-11-26", *args])
