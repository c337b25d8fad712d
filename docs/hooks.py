"""mkdocs hooks (mkdocs.yml ``hooks:``): the generated settings reference and a nav that grows.

- ``reference/settings.md`` is generated from ``newsletter/config.py`` on every build, so the
  reference lists exactly the keys the code reads (see ``newsletter/settings_reference.py``).
- A page in ``docs/`` that ``nav`` does not name is added to it, under the section named in
  ``PLACES`` or under "More", so pages written by others are linked without editing mkdocs.yml
  and ``--strict`` does not fail on them.
"""

from __future__ import annotations

from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from newsletter.settings_reference import settings_reference_markdown

GENERATED = "reference/settings.md"

#: pages others write, and the nav section each belongs in
PLACES = {
    "reading-posts.md": ("Guide", "Reading posts"),
    "email-design.md": ("Guide", "Email design"),
    "signup.md": ("Guide", "Signup and consent"),
    "sendgrid.md": ("Guide", "SendGrid"),
    "hardening.md": ("Guide", "Hardening"),
}


def _named(nav: Any) -> set[str]:
    """Every page path a nav (lists of dicts of lists) names."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, list):
        return set().union(*(_named(item) for item in nav)) if nav else set()
    if isinstance(nav, dict):
        return set().union(*(_named(value) for value in nav.values())) if nav else set()
    return set()


def _section(nav: list[Any], title: str) -> list[Any]:
    for item in nav:
        if isinstance(item, dict) and title in item and isinstance(item[title], list):
            return item[title]
    items: list[Any] = []
    nav.append({title: items})
    return items


def on_files(files: Files, config: MkDocsConfig) -> Files:
    if files.get_file_from_path(GENERATED) is None:
        files.append(File.generated(config, GENERATED, content=settings_reference_markdown()))
    nav = config.nav
    if nav is None:
        return files
    named = _named(nav)
    for page in sorted(files.documentation_pages(), key=lambda f: f.src_uri):
        uri = page.src_uri
        if uri in named:
            continue
        section, title = PLACES.get(uri, ("More", None))
        entry = {title: uri} if title else uri
        _section(nav, section).append(entry)
    return files
