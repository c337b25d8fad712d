"""What a generator module supplies: where its config is and the defaults it implies."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml


@dataclass(frozen=True)
class SiteDefaults:
    """Settings a generator's own config implies. Empty values mean "not said"."""

    generator: str
    config: Path | None = None  # the file they were read from
    content: tuple[str, ...] = ()  # posts folders, relative to the site root
    url: str = ""
    permalink: str = ""
    timezone: str = ""
    name: str = ""
    language: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)  # what {{ site.x }} refers to
    authors: Mapping[str, str] = field(default_factory=dict)  # author key -> display name
    default_syntax: str = "yaml"  # front matter the site writes: yaml or toml


class Generator(Protocol):
    name: str
    label: str  # for messages: "Hugo", "MkDocs Material blog"

    def config_file(self, root: Path) -> Path | None:
        """The generator's config file in ``root`` when this is its site, else None."""
        ...

    def defaults(self, root: Path, config: Path | None) -> SiteDefaults:
        """Defaults read from ``config`` (None: the generator was named, no config found)."""
        ...


class _LenientLoader(yaml.SafeLoader):
    """Safe YAML that reads tags it does not know (``!!python/name:``, ``!ENV``) as None."""


_LenientLoader.add_multi_constructor("", lambda loader, suffix, node: None)
_LenientLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def load_data(path: Path) -> dict[str, Any]:
    """A YAML, TOML or JSON config as a dict; {} when it cannot be read (detection is lenient:
    a config we cannot parse supplies no defaults, it does not stop the tool)."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=_LenientLoader)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def first_file(root: Path, *names: str) -> Path | None:
    for name in names:
        candidate = root / name
        if candidate.is_file():
            return candidate
    return None


def first_dir(root: Path, *names: str) -> str | None:
    for name in names:
        if (root / name).is_dir():
            return name
    return None


def js_string(text: str, key: str) -> str:
    """The string literal given to ``key`` in a JS/TS config (``url: 'https://...'``)."""
    match = re.search(rf"""(?:^|[\s,{{]){re.escape(key)}\s*:\s*(["'`])([^"'`]*)\1""", text, re.M)
    return match.group(2).strip() if match else ""


def read_text(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def join_url(url: str, base: str) -> str:
    """``https://host`` + ``/blog`` without doubled or missing slashes."""
    url = url.strip().rstrip("/")
    base = base.strip().strip("/")
    return f"{url}/{base}" if url and base else url


def authors_map(path: Path | None, *, nested: str | None = None) -> dict[str, str]:
    """key -> name from an authors.yml (``key: {name: ...}``), under ``nested`` if given."""
    if path is None:
        return {}
    data: Any = load_data(path)
    if nested is not None:
        data = data.get(nested, {})
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        if isinstance(value, Mapping) and value.get("name"):
            out[str(key)] = str(value["name"])
    return out
