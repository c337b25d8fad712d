"""Dates in post metadata: the formats site generators write, and Eleventy's git keywords.

Values without a zone are in the site's zone. ``parse_date`` never raises: a value that is not a
date is None, and the caller says what to write (in the file's own syntax).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from newsletter.errors import PostError

_JEKYLL_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*"
    r"(Z|[+-]\d{2}:?\d{2}|[+-]\d{1,2})?$"
)


_TEXT_FORMATS = (
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",  # Astro's starter: pubDate: 'Jul 08 2022'
    "%b %d %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%Y/%m/%d",
)


# Eleventy's date keywords: from git history (stable), or from file times (not: a checkout or a
# copy resets them, which would put every post in "this month")
ELEVENTY_DATES = ("git created", "git last modified", "created", "last modified")


def eleventy_date(keyword: str, path: Path, *, key: str, line: int) -> datetime:
    """The date Eleventy's ``git Created`` / ``git Last Modified`` stand for, from git log.

    ``Created`` and ``Last Modified`` (file times) are refused with what to write instead.
    """
    if not keyword.lower().startswith("git "):
        raise PostError(
            f"{key} {keyword!r} is Eleventy's file-time keyword, and file times change with "
            "every checkout or copy, so they cannot say when a post was published; write the "
            "date (e.g. date: 2026-10-01), or use 'git Created'",
            path=path,
            line=line,
            field=key,
        )
    try:
        log = subprocess.run(
            ["git", "log", "--follow", "--format=%aI", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise PostError(
            f"{key} {keyword!r} needs git, which could not be run ({err}); write the date",
            path=path,
            line=line,
            field=key,
        ) from err
    dates = log.stdout.split()
    if log.returncode != 0 or not dates:
        raise PostError(
            f"{key} {keyword!r} needs the file's git history, and git has no commit of it; "
            "commit the post, or write the date (e.g. date: 2026-10-01)",
            path=path,
            line=line,
            field=key,
        )
    # newest first: the last line is the commit that added the file
    return datetime.fromisoformat(dates[-1] if keyword.lower() == "git created" else dates[0])


def parse_date(value: Any, tz: tzinfo) -> datetime | None:
    """An aware datetime from a front-matter value, or None if it is not a date.

    Values without a zone are in ``tz`` (the site's zone).
    """
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=tz)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    match = _JEKYLL_RE.match(text)
    if match:
        day, clock, zone = match.groups()
        text = f"{day}T{clock}"
        if zone:
            if zone != "Z" and ":" not in zone:
                sign, digits = zone[0], zone[1:].rjust(2, "0")
                zone = f"{sign}{digits[:2]}:{digits[2:] or '00'}"
            text += "+00:00" if zone == "Z" else zone
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _TEXT_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def plain_zone(when: datetime) -> datetime:
    if type(when.tzinfo).__module__.startswith("toml"):
        # the toml package's own tz class; a plain fixed offset compares and copies cleanly
        return when.replace(tzinfo=timezone(when.utcoffset() or timedelta(0)))
    return when


def optional_date(data: Mapping[str, Any], keys: tuple[str, ...], tz: tzinfo) -> datetime | None:
    date_value = data.get("date")
    if isinstance(date_value, Mapping) and "updated" in keys:
        found = parse_date(date_value.get("updated"), tz)
        if found is not None:
            return plain_zone(found)
    for key in keys:
        found = parse_date(data.get(key), tz)
        if found is not None:
            return plain_zone(found)
    return None
