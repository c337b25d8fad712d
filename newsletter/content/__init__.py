"""Read a site's posts (or its feeds) into :class:`Post` values.

The package, one module per job (imports point down this list, never up):

* :mod:`~newsletter.content.model`: ``Post``, ``Cover``, ``ReadResult`` (a leaf);
* :mod:`~newsletter.content.readers`: one reader per format (Markdown with YAML/TOML front matter
  or Pelican metadata lines, reStructuredText, MDX), registered by extension;
* :mod:`~newsletter.content.generators`: Jekyll, Hugo, Zola, ... detected from the site root,
  each supplying defaults from its own config;
* :mod:`~newsletter.content.fields`: metadata to Post fields (authors, URLs, drafts), with
  :mod:`~newsletter.content.dates` and :mod:`~newsletter.content.excerpts`;
* :mod:`~newsletter.content.liquid`: template code left in bodies;
* :mod:`~newsletter.content.markdown`: bodies to email-safe HTML;
* :mod:`~newsletter.content.reading`: finding files and reading them all;
* :mod:`~newsletter.content.feeds`: RSS, Atom and JSON Feed entries as posts.
"""

from __future__ import annotations

from newsletter.content.dates import parse_date
from newsletter.content.excerpts import excerpt_of
from newsletter.content.generators import apply_generator_defaults
from newsletter.content.liquid import PostIndex, resolve_text
from newsletter.content.markdown import body_html, excerpt_html, markdown_to_email_html
from newsletter.content.model import Cover, Post, ReadResult, SiteProfile
from newsletter.content.reading import find_post_files, read_post, read_posts, read_site

__all__ = [
    "Cover",
    "Post",
    "PostIndex",
    "ReadResult",
    "SiteProfile",
    "apply_generator_defaults",
    "body_html",
    "excerpt_html",
    "excerpt_of",
    "find_post_files",
    "markdown_to_email_html",
    "parse_date",
    "read_post",
    "read_posts",
    "read_site",
    "resolve_text",
]
