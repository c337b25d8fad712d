"""Find a site's post files and read them into :class:`~newsletter.content.model.Post` values.

Reading parses metadata only; Markdown is rendered later (:func:`newsletter.content.markdown.
body_html`), and only for the posts an email needs. The pipeline, Pelican's nouns:

1. :func:`find_post_files` walks the content folders: hidden folders, ``node_modules``, README and
   LICENSE files are passed over; FIFOs, sockets and devices are skipped with a message (a FIFO
   would hang the read); a symlink that leads back into a folder being walked is not followed.
2. a reader per format (:mod:`newsletter.content.readers`) splits each file into metadata and body;
3. :func:`newsletter.content.fields.build_post` turns the metadata into a Post, with the site's
   generator profile (:mod:`newsletter.content.generators`);
4. template code in the bodies is resolved (:mod:`newsletter.content.liquid`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.config import Settings
from newsletter.content.fields import build_post
from newsletter.content.generators import profile as generator_profile
from newsletter.content.liquid import PostIndex, resolve_post
from newsletter.content.model import Post, ReadResult, SiteProfile
from newsletter.content.readers import READERS, reader_for
from newsletter.errors import ConfigError, LocatedError, PostError

# README/LICENSE are not posts; a Hugo or Zola _index.md is a section page
if TYPE_CHECKING:  # feeds (httpx, feedparser) are imported only when a site has feeds
    from newsletter.content.feeds import FeedCache

_NOT_POSTS = ("readme", "license", "changelog", "_index")
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _skip_dir(name: str) -> bool:
    return name.startswith(".") or name == "node_modules"


def _is_post_name(name: str) -> bool:
    if name.startswith(".") or reader_for(name) is None:
        return False
    return name.rsplit(".", 1)[0].lower() not in _NOT_POSTS


def _special_kind(path: str) -> str | None:
    """What a non-regular file is (FIFO, socket, device), or None for a file or broken link."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # a broken symlink: reading it reports the error
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def find_post_files(
    settings: Settings, skipped: list[LocatedError] | None = None
) -> list[tuple[Path, Path]]:
    """(file, content folder) for every post file, in a stable order.

    Files that are not posts (FIFOs, sockets, devices, symlink loops) go to ``skipped`` with
    what they are; a content folder that does not exist is a ConfigError.
    """
    found: list[tuple[Path, Path]] = []
    notes = skipped if skipped is not None else []
    for folder in settings.content_dirs:
        if not folder.is_dir():
            raise ConfigError(
                "content folder not found; set [site] content in newsletter.toml or pass "
                "--content DIR",
                path=folder,
            )
        _walk(str(folder), (os.path.realpath(folder),), folder, found, notes)
    return found


def _walk(
    top: str,
    ancestors: tuple[str, ...],
    folder: Path,
    found: list[tuple[Path, Path]],
    notes: list[LocatedError],
) -> None:
    """Depth-first, sorted, following symlinks except into a folder already being walked."""
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        notes.append(
            LocatedError(f"folder cannot be read ({err.strerror}); it was skipped", path=top)
        )
        return
    subdirs: list[os.DirEntry[str]] = []
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if not _skip_dir(name):
                subdirs.append(entry)
            continue
        if not _is_post_name(name):
            continue
        try:
            regular = entry.is_file()
        except OSError:
            regular = False
        if not regular:
            kind = _special_kind(entry.path)
            if kind is not None:
                notes.append(
                    LocatedError(
                        f"skipped: {kind} is not a post file; move it out of the content folder",
                        path=entry.path,
                    )
                )
                continue
        found.append((Path(entry.path), folder))
    for entry in subdirs:
        real = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
        if entry.is_symlink() and any(
            real == a or a.startswith(real.rstrip(os.sep) + os.sep) for a in ancestors
        ):
            notes.append(
                LocatedError(
                    f"skipped: symlink loop (it leads back to {real}, which contains it); "
                    "not followed",
                    path=entry.path,
                )
            )
            continue
        _walk(entry.path, (*ancestors, os.path.realpath(real)), folder, found, notes)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        reason = err.strerror or str(err)
        raise PostError(
            f"cannot read the file ({reason}); check that it exists and is readable",
            path=path,
        ) from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise PostError(
            f"file is not UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "re-save it as UTF-8",
            path=path,
            line=line,
        ) from err
    return text.replace("\r\n", "\n") if "\r" in text else text


def _parse(
    path: Path,
    settings: Settings,
    *,
    root: Path,
    profile: SiteProfile,
    warnings: list[LocatedError],
) -> Post:
    reader = reader_for(path.name) or READERS[".md"]
    doc = reader.read(_read_text(path), path)
    return build_post(path, doc, settings, root=root, profile=profile, warnings=warnings)


def read_post(path: Path, settings: Settings, *, root: Path) -> Post:
    """Read one post. ``root`` is the content folder it was found in.

    Template code in its body is resolved against the site only (links to other posts need
    :func:`read_posts`). Raises :class:`PostError` for a post that cannot be read.
    """
    post = _parse(path, settings, root=root, profile=generator_profile(settings), warnings=[])
    resolve_post(post, settings, PostIndex([post]))
    return post


def read_posts(settings: Settings) -> ReadResult:
    """Read every post in the site's content folders.

    Bad posts are collected in ``errors`` (one line each); template code that cannot be resolved
    is removed and reported in ``warnings``; files that are not posts are in ``skipped``.
    Markdown is not rendered here.
    """
    profile = generator_profile(settings)
    posts: list[Post] = []
    errors: list[PostError] = []
    warnings: list[LocatedError] = []
    skipped: list[LocatedError] = []
    for path, folder in find_post_files(settings, skipped):
        try:
            posts.append(_parse(path, settings, root=folder, profile=profile, warnings=warnings))
        except PostError as err:
            errors.append(err)
    index = PostIndex(posts)
    for post in posts:
        warnings.extend(resolve_post(post, settings, index))
    return ReadResult(posts=posts, errors=errors, warnings=warnings, skipped=skipped)


def read_site(settings: Settings, *, feed_cache: FeedCache | None = None) -> ReadResult:
    """The site's posts: its files (:func:`read_posts`) and its feeds (``[site] feeds``).

    A site with feeds and no content folder (one not set explicitly) is read from its feeds only.
    A feed that cannot be fetched raises :class:`~newsletter.errors.FeedError`.
    """
    feeds = settings.site.feeds
    files = not feeds or "site.content" in settings.explicit
    files = files or any(d.is_dir() for d in settings.content_dirs)
    result = read_posts(settings) if files else ReadResult(posts=[], errors=[], warnings=[])
    if feeds:
        from newsletter.content.feeds import read_feeds

        part = read_feeds(feeds, settings, cache=feed_cache)
        result.posts.extend(part.posts)
        result.errors.extend(part.errors)
        result.warnings.extend(part.warnings)
    return result
