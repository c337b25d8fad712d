"""Template code left in post bodies (Liquid, Nunjucks, Hugo shortcodes).

Static-site generators run ``{{ site.x }}``, ``{% post_url slug %}`` and friends before a post
becomes a page; an email never runs them. What can be resolved from ``newsletter.toml`` values and
the posts themselves is resolved; the rest is removed with a warning naming the file and line.

* ``{{ site.KEY }}``: ``[site.values]``, then ``name``/``title``/``url``; ``baseurl`` is empty.
* ``{{ page.KEY }}``: the post's own front matter (plus ``url``, ``slug``, ``date``).
* filters: ``relative_url``, ``absolute_url``, ``upcase``, ``downcase``, ``capitalize``,
  ``strip``, ``escape``, ``date: "FORMAT"``, ``default: "x"``. Any other filter: removed.
* ``{% post_url NAME %}`` and ``{% link PATH %}``: the URL of that post.
* ``{% comment %}...{% endcomment %}``: removed silently.
* ``{% raw %}...{% endraw %}``: kept as text.
* ``{{< youtube ID >}}`` (Hugo): becomes a YouTube iframe, which the HTML stage turns into a
  linked thumbnail. Any other tag is removed with a warning.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from newsletter.config import Settings
from newsletter.content.fields import absolute
from newsletter.content.model import Post
from newsletter.errors import LocatedError

# every alternative starts with "{", written once up front so the regex engine can skip ahead
# to the next "{" quickly instead of trying five alternatives at every character
_TOKEN = re.compile(
    r"\{(?:"
    r"(?P<raw>%-?\s*raw\s*-?%\}(?P<raw_body>.*?)\{%-?\s*endraw\s*-?%\})"
    r"|(?P<comment>%-?\s*comment\s*-?%\}.*?\{%-?\s*endcomment\s*-?%\})"
    r"|(?P<hugo>\{[<%]\s*(?P<hugo_body>.*?)\s*[>%]\}\})"
    r"|(?P<expr>\{-?\s*(?P<expr_body>.*?)\s*-?\}\})"
    r"|(?P<tag>%-?\s*(?P<tag_body>.*?)\s*-?%\})"
    r")",
    re.DOTALL,
)
_STRING = re.compile(r"""^(?:"([^"]*)"|'([^']*)')$""")


class PostIndex:
    """Find posts by file name (with or without date prefix), slug or path."""

    def __init__(self, posts: Iterable[Post]) -> None:
        self._by_key: dict[str, Post] = {}
        for post in posts:
            for key in (post.path.stem, post.slug, post.path.name, post.path.as_posix()):
                self._by_key.setdefault(key.lower(), post)

    def find(self, name: str) -> Post | None:
        key = name.strip().strip("\"'").lower()
        post = self._by_key.get(key) or self._by_key.get(Path(key).stem)
        if post is None and "/" in key:
            post = self._by_key.get(Path(key).name)
        return post


def _lookup(expr: str, post: Post, settings: Settings) -> tuple[bool, Any]:
    literal = _STRING.match(expr)
    if literal:
        return True, literal.group(1) if literal.group(1) is not None else literal.group(2)
    scope, _, key = expr.partition(".")
    if not key:
        return False, None
    if scope == "site":
        values = settings.site.values
        head, _, rest = key.partition(".")
        if head in values:
            value: Any = values[head]
            for part in rest.split(".") if rest else []:
                if not isinstance(value, dict) or part not in value:
                    return False, None
                value = value[part]
            return True, value
        builtin = {
            "name": settings.site.name,
            "title": settings.site.name,
            "url": settings.site.url.rstrip("/"),
            "baseurl": "",
            "language": settings.site.language,
        }
        return (True, builtin[key]) if key in builtin else (False, None)
    if scope == "page":
        own = {"url": post.url, "slug": post.slug, "date": post.date, "title": post.title}
        if key in post.metadata and not isinstance(post.metadata[key], dict | list):
            return True, post.metadata[key]
        return (True, own[key]) if key in own else (False, None)
    return False, None


def _apply_filter(value: Any, name: str, arg: str | None, settings: Settings) -> tuple[bool, Any]:
    if name in ("relative_url", "absolute_url"):
        return True, absolute(str(value), settings.site.url.rstrip("/") + "/")
    if name == "date" and arg is not None and isinstance(value, datetime):
        return True, value.astimezone(settings.site.tz).strftime(arg)
    simple = {
        "upcase": lambda s: s.upper(),
        "downcase": lambda s: s.lower(),
        "capitalize": lambda s: s[:1].upper() + s[1:],
        "strip": lambda s: s.strip(),
        "escape": html.escape,
    }
    if name in simple:
        return True, simple[name](str(value))
    if name == "default":
        return True, value if value not in (None, "", False) else (arg or "")
    return False, None


def _evaluate(body: str, post: Post, settings: Settings) -> tuple[bool, str]:
    parts = [p.strip() for p in body.split("|")]
    found, value = _lookup(parts[0], post, settings)
    filters = parts[1:]
    if not found and not any(f.startswith("default") for f in filters):
        return False, ""
    for spec in filters:
        name, _, raw_arg = spec.partition(":")
        arg_match = _STRING.match(raw_arg.strip())
        arg = (arg_match.group(1) or arg_match.group(2) or "") if arg_match else None
        ok, value = _apply_filter(value, name.strip(), arg, settings)
        if not ok:
            return False, ""
    if isinstance(value, datetime):
        local = value.astimezone(settings.site.tz)
        value = f"{local:%B} {local.day}, {local.year}"
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    return True, "" if value is None else str(value)


def resolve_text(
    text: str, post: Post, settings: Settings, index: PostIndex, *, first_line: int
) -> tuple[str, list[LocatedError]]:
    """``text`` with its template code resolved or removed, and a warning per removal."""
    if "{" not in text or ("{{" not in text and "{%" not in text):  # one-char search is fastest
        return text, []
    warnings: list[LocatedError] = []
    code_spans = _code_spans(text)

    def warn(match: re.Match[str], message: str) -> None:
        line = first_line + text.count("\n", 0, match.start())
        warnings.append(LocatedError(message, path=post.path, line=line))

    def in_code(match: re.Match[str]) -> bool:
        return any(a <= match.start() < b for a, b in code_spans)

    def replace(match: re.Match[str]) -> str:
        code = " ".join(match.group(0).split())
        if match.group("raw") is not None:
            return match.group("raw_body")
        if match.group("comment") is not None:
            return ""
        if match.group("hugo") is not None:
            words = match.group("hugo_body").split()
            if len(words) >= 2 and words[0] == "youtube":
                video = words[1].strip("\"'").removeprefix("id=").strip("\"'")
                return f'<iframe src="https://www.youtube.com/embed/{video}"></iframe>'
            warn(match, f"removed the shortcode {code}, which an email cannot run; edit the post")
            return ""
        if match.group("expr") is not None:
            ok, value = _evaluate(match.group("expr_body"), post, settings)
            if ok:
                return value
            if in_code(match):  # a code sample showing template code: keep it as written
                return match.group(0)
            name = match.group("expr_body").split("|")[0].strip()
            hint = (
                f"add '{name.removeprefix('site.')}' under [site.values] in newsletter.toml"
                if name.startswith("site.")
                else "edit the post"
            )
            warn(match, f"removed template code {code} that cannot be resolved; {hint}")
            return ""
        words = match.group("tag_body").split(None, 1)
        tag = words[0] if words else ""
        arg = words[1].strip() if len(words) > 1 else ""
        if tag in ("post_url", "link"):
            target = index.find(arg)
            if target is not None:
                return target.url
            warn(match, f"removed {code}: no post named {arg!r} was found; fix the name")
            return ""
        if in_code(match):
            return match.group(0)
        warn(match, f"removed the template tag {code}, which an email cannot run; edit the post")
        return ""

    return _TOKEN.sub(replace, text), warnings


_FENCED = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?^[ \t]{0,3}\1[`~]*[ \t]*$", re.M | re.S)
_INLINE = re.compile(r"(?<!`)(`+)(?!`)[^\n]+?(?<!`)\1(?!`)")
_HTML_CODE = re.compile(r"<(pre|code)\b[^>]*>.*?</\1\s*>", re.I | re.S)


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` shows code: fenced blocks, inline code, <pre> and <code>.

    Template code there that cannot be resolved is a sample to show, not code to run: it is
    kept as written (resolvable values are still filled in, as Jekyll and Eleventy would)."""
    if "`" not in text and "~~~" not in text and "<pre" not in text and "<code" not in text:
        return []
    spans = [m.span() for rx in (_FENCED, _HTML_CODE) for m in rx.finditer(text)]
    blocks = list(spans)
    for m in _INLINE.finditer(text):
        if not any(a <= m.start() < b for a, b in blocks):
            spans.append(m.span())
    return spans


def resolve_post(post: Post, settings: Settings, index: PostIndex) -> list[LocatedError]:
    """Set ``post.markdown`` from the resolved text; return the warnings.

    The excerpt is worked out later, on first use (:func:`newsletter.content.excerpts.excerpt_of`);
    template code in it is resolved the same way, without warnings (the body has them).
    """
    post.markdown, warnings = resolve_text(
        post.body, post, settings, index, first_line=post.body_line
    )
    post._resolve = lambda text: resolve_text(text, post, settings, index, first_line=1)[0]
    return warnings
