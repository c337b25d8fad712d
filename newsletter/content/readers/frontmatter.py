"""YAML (``---``) and TOML (``+++``) front matter, read with python-frontmatter's handlers.

YAML and TOML errors are translated into :class:`PostError` here and nowhere else.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import toml
import yaml
from frontmatter.default_handlers import BaseHandler, TOMLHandler, YAMLHandler

from newsletter.content.readers.base import TOML, YAML, Document, Syntax, line_finder
from newsletter.errors import PostError

_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_YAML = YAMLHandler()
_TOML = TOMLHandler()
_HANDLERS: tuple[tuple[BaseHandler, Syntax], ...] = ((_YAML, YAML), (_TOML, TOML))
KEY_PATTERN = r"^[ \t]*['\"]?{key}['\"]?\s*[:=]"


def split_front_matter(text: str, path: Path) -> Document | None:
    """The document if ``text`` opens with front matter, else None.

    Raises PostError with the file line of a YAML/TOML syntax error.
    """
    lead = len(text) - len(text.lstrip())
    stripped = text[lead:]
    first_line = text.count("\n", 0, lead) + 1
    found = next(((h, s) for h, s in _HANDLERS if h.detect(stripped)), None)
    if found is None:
        return None
    handler, syntax = found
    try:
        fm, body = handler.split(stripped)
    except ValueError as err:
        delim = handler.START_DELIMITER
        raise PostError(
            f"front matter opened with {delim!r} is never closed; add a closing {delim!r} line",
            path=path,
            line=first_line,
        ) from err
    fm_line = first_line  # fm starts with the newline that ends the opening delimiter
    body_start = len(stripped) - len(body)
    body_line = first_line + stripped.count("\n", 0, body_start)
    # the closing delimiter's line ends with a newline that belongs to it
    if body.startswith("\n"):
        body = body[1:]
        body_line += 1
    data = _load(handler, fm, fm_line, path)
    return Document(
        metadata=data,
        body=body,
        body_line=body_line,
        syntax=syntax,
        has_metadata=True,
        key_line=line_finder(fm, fm_line, KEY_PATTERN),
    )


def _load(handler: BaseHandler, fm: str, fm_line: int, path: Path) -> dict[str, Any]:
    try:
        data = handler.load(fm)
    except yaml.YAMLError as err:
        # where the construct the user got wrong began (an unclosed '[' or quote), else where
        # the parser gave up
        mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
        line = fm_line + mark.line if mark is not None else fm_line
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PostError(
            f"front matter is not valid YAML ({problem}); fix the syntax (quote values that "
            "contain ': ' or start with '[', '{', '@', '`')",
            path=path,
            line=line,
        ) from err
    except toml.TomlDecodeError as err:
        raise PostError(
            f"front matter is not valid TOML ({err.msg}); fix the syntax",
            path=path,
            line=fm_line + err.lineno - 1,
        ) from err
    except (TypeError, ValueError) as err:  # impossible dates such as 2026-02-30
        line = fm_line
        for match in _ISO_DAY.finditer(fm):
            try:
                date(*(int(g) for g in match.groups()))
            except ValueError:
                line = fm_line + fm.count("\n", 0, match.start())
                break
        raise PostError(
            f"front matter has a value that cannot be read ({err}); fix it, e.g. the date",
            path=path,
            line=line,
        ) from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PostError(
            "front matter must be a mapping of keys to values (key: value), "
            f"not a {type(data).__name__}",
            path=path,
            line=fm_line + 1,
        )
    return data
