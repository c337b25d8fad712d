"""MJML to HTML (mjml-python, i.e. MRML) and CSS inlining (premailer or css-inline).

MRML reports errors as byte offsets into the MJML it was given, or not at all ("unexpected end
of stream"). :func:`compile_mjml` turns both into the template name and line a user can open,
by matching the failing line of the rendered MJML back to the template sources.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import jinja2
import mjml

from newsletter.errors import RenderError

INLINERS = ("premailer", "css-inline")

_POSITION = re.compile(r"at position (\d+):(\d+)")
_MJ_TAG = re.compile(r"<(/?)(mj-[a-z-]+|mjml)\b[^>]*?(/?)>")
_UNSUPPORTED = ("mj-html-attributes",)
_UNQUOTED = re.compile(r"<(mj-[a-z-]+)\b[^>]*?\s[a-z-]+=(?![\"'])")


@dataclass(frozen=True)
class SourceLine:
    template: str
    line: int
    text: str


def _template_lines(env: jinja2.Environment, names: Iterable[str]) -> list[SourceLine]:
    out: list[SourceLine] = []
    loader = env.loader
    if loader is None:
        return out
    for name in names:
        try:
            source, _, _ = loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            continue
        for no, text in enumerate(source.splitlines(), start=1):
            out.append(SourceLine(name, no, text))
    return out


def _literal_prefix(text: str) -> str:
    """The part of a template line before its first Jinja tag, stripped."""
    cut = len(text)
    for mark in ("{{", "{%", "{#"):
        i = text.find(mark)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()


def locate(
    rendered: str, offset: int, env: jinja2.Environment, names: Iterable[str]
) -> tuple[str | None, int]:
    """Map a byte offset in rendered MJML to (template, line), or (None, rendered line)."""
    raw = rendered.encode("utf-8")
    line_no = raw[:offset].count(b"\n") + 1
    line = rendered.splitlines()[line_no - 1].strip() if rendered else ""
    best: tuple[int, SourceLine] | None = None
    for src in _template_lines(env, names):
        prefix = _literal_prefix(src.text)
        if prefix and line.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), src)
    if best is None:
        return None, line_no
    return best[1].template, best[1].line


def _unclosed(rendered: str) -> tuple[str, int] | None:
    """The first mj-* element that is opened and never closed: (tag, line in ``rendered``)."""
    stack: list[tuple[str, int]] = []
    for m in _MJ_TAG.finditer(rendered):
        closing, tag, selfclosing = m.group(1), m.group(2), m.group(3)
        pos = m.start()
        if selfclosing:
            continue
        if not closing:
            stack.append((tag, pos))
            continue
        while stack and stack[-1][0] != tag:
            return stack[-1][0], rendered.count("\n", 0, stack[-1][1]) + 1
        if stack:
            stack.pop()
    if stack:
        tag, pos = stack[-1]
        return tag, rendered.count("\n", 0, pos) + 1
    return None


def compile_mjml(
    rendered: str, env: jinja2.Environment, template_names: Callable[[], Iterable[str]]
) -> str:
    """MJML to HTML; a failure names the template and line it most likely comes from.

    ``template_names`` lists the templates to search for the failing line (only called on
    failure, since listing template folders costs file system calls).
    """
    for tag in _UNSUPPORTED:
        i = rendered.find(f"<{tag}")
        if i != -1:
            names = list(template_names())
            where, line = locate(rendered, len(rendered[:i].encode()), env, names)
            raise RenderError(
                f"<{tag}> is not supported by mjml-python; use css-class and <mj-style> instead",
                template=where or "rendered MJML",
                line=line,
            )
    try:
        return str(mjml.mjml2html(rendered, disable_comments=False))
    except (ValueError, RuntimeError) as err:
        text = str(err)
        names = list(template_names())
        m = _POSITION.search(text)
        if m:
            where, line = locate(rendered, int(m.group(1)), env, names)
            raise RenderError(
                f"MJML: {text}", template=where or "rendered MJML", line=line
            ) from err
        unquoted = _UNQUOTED.search(rendered)
        if unquoted:
            where, line = locate(rendered, len(rendered[: unquoted.start()].encode()), env, names)
            raise RenderError(
                f"MJML: an attribute of <{unquoted.group(1)}> is not in quotes ({text})",
                template=where or "rendered MJML",
                line=line,
            ) from err
        found = _unclosed(rendered)
        if found:
            tag, rline = found
            offset = len("\n".join(rendered.split("\n")[: rline - 1]).encode()) + 1
            where, line = locate(rendered, offset, env, names)
            raise RenderError(
                f"MJML: <{tag}> is not closed, or contains HTML that is not well-formed ({text})",
                template=where or "rendered MJML",
                line=line if where else rline,
            ) from err
        raise RenderError(
            f"MJML: {text}; check that every tag in the templates is closed and quoted",
            template=names[0] if names else None,
        ) from err


_KEEP_STYLE = re.compile(
    r"<style\b[^>]*\bdata-nl-keep\b[^>]*>(.*?)</style>"
    # MJML's reset (#outlook a, body, table, td, img, p): MJML keeps it in <head>, and inlined
    # it would add the same declarations to every table and cell (and most of the inline time)
    r"|<style type=\"text/css\">(\s*#outlook a\s*\{.*?)</style>",
    re.DOTALL | re.I,
)
_KEEP_MARK = "<!--nl-keep-{}-->"
_KEEP_MARK_RE = re.compile(r"<!--nl-keep-(\d+)-->")
# Every comment except Outlook's conditional comments (``<!--[if mso]>``, ``<!--<![endif]-->``).


def strip_comments(html: str) -> str:
    """Drop every HTML comment but Outlook's conditional ones: nothing from a template or a post
    (notes, paths, markers) reaches a subscriber.

    A comment runs from ``<!--`` to the next ``-->``, so ``<!--[if !mso]><!-->`` is one (kept)
    comment, as a browser reads it.
    """
    out: list[str] = []
    done = 0
    start = html.find("<!--")
    while start != -1:
        end = html.find("-->", start + 4)
        if end == -1:
            break
        if html.startswith(("[if", "<![endif]"), start + 4):
            out.append(html[done : end + 3])
        else:
            out.append(html[done:start])
        done = end + 3
        start = html.find("<!--", done)
    out.append(html[done:])
    return "".join(out)


def inline_css(html: str, inliner: str) -> str:
    """Move CSS from ``<style>`` into ``style=""`` attributes, the same way with either inliner.

    ``<style data-nl-keep>`` blocks (media queries, dark mode, Outlook.com's ``[data-ogsc]``
    rules) are set aside first and put back untouched afterwards: neither inliner may inline,
    reorder or drop them. Both inliners keep the doctype, MJML's pixel ``width`` attributes
    (Outlook for Windows sizes images by them) and the ``@media`` rules of the other styles.
    """
    kept: list[str] = []

    def shelve(m: re.Match[str]) -> str:
        kept.append(m.group(1) if m.group(1) is not None else m.group(2))
        return _KEEP_MARK.format(len(kept) - 1)

    shelved = _KEEP_STYLE.sub(shelve, html)
    if inliner == "css-inline":
        import css_inline

        try:
            out = str(
                css_inline.CSSInliner(
                    keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False
                ).inline(shelved)
            )
        except ValueError as err:
            raise RenderError(f"css-inline failed: {err}", template="inline CSS") from err
    elif inliner == "premailer":
        out = _premailer(shelved)
    else:
        raise RenderError(
            f"unknown inliner {inliner!r}; set email.inliner to one of: {', '.join(INLINERS)}",
            template="newsletter.toml",
        )
    return _KEEP_MARK_RE.sub(
        lambda m: f'<style type="text/css">{kept[int(m.group(1))]}</style>', out
    )


def _premailer(html: str) -> str:
    import premailer

    try:
        return str(
            premailer.Premailer(
                html,
                allow_network=False,
                strip_important=False,
                keep_style_tags=False,
                disable_validation=True,
                cssutils_logging_level=logging.CRITICAL,
                cache_css_parsing=True,
                align_floating_images=False,
                remove_classes=False,
                # width/height from CSS would overwrite MJML's pixel widths (width="600" becomes
                # "100%"), which Outlook for Windows needs to size images and columns
                disable_basic_attributes=["width", "height"],
            ).transform(
                # lxml writes the doctype only when asked (MJML's lower-case one is not
                # recognised); without it the email renders in quirks mode
                doctype="<!DOCTYPE html>"
            )
        )
    except (ValueError, TypeError) as err:
        raise RenderError(f"premailer failed: {err}", template="inline CSS") from err
