"""MDX posts (Astro, Docusaurus): front matter + Markdown with JSX in it.

An email cannot run JSX, and a reader must never see it raw, so the body is turned into plain
Markdown before anything else reads it:

* ``import``/``export`` statements at the top level (multi-line ones too) are removed;
* ``{/* comments */}`` and lines holding only a ``{expression}`` are removed;
* a component (a tag whose name starts with a capital letter, ``<Tabs>``, ``<Admonition>``,
  ``<Foo.Bar>``) loses its tags and keeps its children's text; a self-closing one
  (``<Chart data={x} />``) disappears;
* Docusaurus admonitions (``:::note Title`` ... ``:::``) become a quoted block with a bold label.

Code fences are left exactly as written.
"""

from __future__ import annotations

import re
from pathlib import Path

from newsletter.content.readers.base import YAML, Document
from newsletter.content.readers.frontmatter import split_front_matter

_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_STATEMENT = re.compile(r"^(?:import|export)\b")
_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.DOTALL)
_ONLY_EXPRESSION = re.compile(r"^\s*\{[^{}]*\}\s*$")
# a JSX attribute value may be "x", 'x' or {expression} (one level of nested braces)
_ATTRS = r"""(?:\s+[\w:.-]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|\{(?:[^{}]|\{[^{}]*\})*\}))?)*\s*"""
_SELF_CLOSING = re.compile(rf"<[A-Z][\w.]*{_ATTRS}/>")
_OPEN = re.compile(rf"<[A-Z][\w.]*{_ATTRS}>")
_CLOSE = re.compile(r"</[A-Z][\w.]*\s*>")
_FRAGMENT = re.compile(r"</?>")
_ADMONITION = re.compile(r"^:::(\w+)(?:[ \t]+(.*))?$")


def strip_jsx(body: str) -> str:
    """``body`` with JSX removed or turned into its text (see the module docstring)."""
    body = _COMMENT.sub("", body)
    out: list[str] = []
    fence: str | None = None
    depth = 0  # open braces of a multi-line import/export still being skipped
    quoting = False
    for line in body.split("\n"):
        if fence is not None:
            out.append(line)
            if line.lstrip().startswith(fence):
                fence = None
            continue
        match = _FENCE.match(line)
        if match:
            fence = match.group(1)[0] * 3
            out.append(line)
            continue
        if depth > 0:
            depth += line.count("{") + line.count("(") - line.count("}") - line.count(")")
            continue
        if _STATEMENT.match(line):
            depth = max(0, line.count("{") + line.count("(") - line.count("}") - line.count(")"))
            continue
        admonition = _ADMONITION.match(line.strip())
        if admonition:
            kind, title = admonition.groups()
            label = (title or kind).strip()
            out.append(f"> **{label[:1].upper()}{label[1:]}**")
            out.append(">")
            quoting = True
            continue
        if line.strip() == ":::":
            quoting = False
            out.append("")
            continue
        if _ONLY_EXPRESSION.match(line):
            continue
        if "<" in line:
            line = _SELF_CLOSING.sub("", line)
            line = _OPEN.sub("", line)
            line = _CLOSE.sub("", line)
            line = _FRAGMENT.sub("", line)
            if not line.strip() and out and not out[-1].strip():
                continue  # a line that held only tags: no second blank line
        out.append(f"> {line}".rstrip() if quoting else line)
    return "\n".join(out)


class MDXReader:
    name = "mdx"
    extensions: tuple[str, ...] = (".mdx",)

    def read(self, text: str, path: Path) -> Document:
        doc = split_front_matter(text, path)
        if doc is None:
            doc = Document(metadata={}, body=text, body_line=1, syntax=YAML, has_metadata=False)
        doc.body = strip_jsx(doc.body)
        return doc
