"""Find and run the email templates (Jinja2), and say where a template went wrong.

Templates are looked up in the user's folder (setting ``email.templates``) first, then in the
defaults shipped with the tool: a file in the user's folder with the same name as a default
replaces it, so overriding only ``partials/footer.mjml.j2`` works.

Names ending in ``.txt.j2`` are plain text (no autoescaping); every other template is HTML/MJML
and autoescaped. Variables are strict: an undefined name stops the render with the template's
name and line.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from newsletter.errors import RenderError


def default_templates_dir() -> Path:
    """The templates shipped with the tool.

    An installed wheel carries them inside the package (``newsletter/default_templates``); an
    editable install or a source checkout uses the repository's top-level ``templates/``.
    """
    pkg = Path(__file__).resolve().parent
    inside = pkg / "default_templates"
    return inside if inside.is_dir() else pkg.parent / "templates"


def _autoescape(name: str | None) -> bool:
    return not (name or "").endswith(".txt.j2")


@functools.lru_cache(maxsize=16)
def _environment(dirs: tuple[str, ...]) -> jinja2.Environment:
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(d) for d in dirs])
    env = jinja2.Environment(
        loader=loader,
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # no mtime check per template and include (a stat each): the preview calls
        # forget_templates() whenever a file changes
        auto_reload=False,
    )
    env.filters["wrap"] = _wrap_filter
    return env


def _wrap_filter(text: str, width: int = 76, indent: str = "") -> str:
    """``{{ post.excerpt | wrap }}`` in text templates: lines of at most ``width`` columns."""
    from newsletter.textpart import wrap

    return wrap(str(text), width, first=indent, rest=indent)


def forget_templates() -> None:
    """Drop compiled templates, e.g. after a file appeared that shadows a default (preview)."""
    _environment.cache_clear()
    _resolved_dir.cache_clear()  # the folder may have become a symlink, or stopped being one


@functools.cache
def _default_dir() -> str:
    """The shipped templates' folder, resolved once per process: it is part of the installed
    package, and resolving it on every render cost about 60 µs of system calls."""
    return str(default_templates_dir().resolve())


@functools.lru_cache(maxsize=16)
def _resolved_dir(user_dir: Path) -> str:
    """The user's folder resolved, until :func:`forget_templates` (a handful of system calls
    a render otherwise; whether it exists is still asked every time)."""
    return str(user_dir.resolve())


def environment(user_dir: Path | None) -> jinja2.Environment:
    """The Jinja environment for a user's template folder (which may not exist)."""
    default = _default_dir()
    if user_dir is not None and user_dir.is_dir():
        user = _resolved_dir(user_dir.absolute())  # absolute: the key may not hang on the cwd
        if user != default:
            return _environment((user, default))
    return _environment((default,))


def _template_frame(err: BaseException) -> tuple[str | None, int | None]:
    """The innermost template file and line in ``err``'s traceback."""
    name: str | None = None
    line: int | None = None
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename.endswith(".j2"):
            name, line = frame.filename, frame.lineno
    return name, line


def _short(env: jinja2.Environment, filename: str | None) -> str | None:
    """A template's name as the user knows it (relative to its folder), with the folder."""
    if filename is None:
        return None
    loader = env.loader
    if isinstance(loader, jinja2.ChoiceLoader):
        for sub in loader.loaders:
            if isinstance(sub, jinja2.FileSystemLoader):
                for root in sub.searchpath:
                    try:
                        return str(Path(filename).relative_to(root))
                    except ValueError:
                        continue
    return filename


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render ``name``; every Jinja failure becomes a :class:`RenderError` with template:line."""
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as err:
        missing = err.name or name
        raise RenderError(
            f"template {missing!r} not found in the templates folder or the defaults",
            template=name if missing != name else None,
        ) from err
    except jinja2.TemplateSyntaxError as err:
        raise RenderError(
            f"template syntax error: {err.message}",
            template=_short(env, err.filename) or err.name or name,
            line=err.lineno,
        ) from err
    try:
        return template.render(context)
    except jinja2.TemplateSyntaxError as err:  # in an included template, compiled lazily
        raise RenderError(
            f"template syntax error: {err.message}",
            template=_short(env, err.filename) or err.name or name,
            line=err.lineno,
        ) from err
    except jinja2.UndefinedError as err:
        filename, line = _template_frame(err)
        raise RenderError(
            f"{err.message}; define it or remove it from the template",
            template=_short(env, filename) or name,
            line=line,
        ) from err
    except jinja2.TemplateError as err:
        filename, line = _template_frame(err)
        raise RenderError(
            f"template error: {err}", template=_short(env, filename) or name, line=line
        ) from err
    except (TypeError, ValueError, AttributeError, KeyError, ZeroDivisionError) as err:
        filename, line = _template_frame(err)
        if filename is None:
            raise
        raise RenderError(
            f"template error: {type(err).__name__}: {err}",
            template=_short(env, filename),
            line=line,
        ) from err


def render_string(source: str, context: Mapping[str, Any], *, setting: str) -> str:
    """Render a one-line Jinja expression from the settings (a subject line) as plain text."""
    try:
        return _compiled_string(source).render(context)
    except jinja2.TemplateError as err:
        message = getattr(err, "message", None) or str(err)
        raise RenderError(f"{message}; fix the setting", template=setting) from err


@functools.lru_cache(maxsize=64)
def _compiled_string(source: str) -> jinja2.Template:
    """A setting's template, compiled once per process (a subject is rendered every issue)."""
    return _string_environment().from_string(source)


@functools.lru_cache(maxsize=1)
def _string_environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
