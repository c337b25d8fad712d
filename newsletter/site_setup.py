"""Setting a site up (``newsletter init``): detect what the site says, write the settings file.

:func:`detect_site` looks at a site's folder: its generator, public URL, name, time zone,
permalink and posts folder. It is deliberately small (Jekyll, Hugo, Eleventy, or a folder of
Markdown posts) and is the one function to swap for the full generator detection of
``newsletter.content.generators`` once that is in. :func:`write_site_files` writes a commented
``newsletter.toml`` and a ``.env.example`` (the secrets, never their values), and copies the
default templates on request.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.config import DEFAULT_CONFIG_NAME, EmailSettings, SiteSettings
from newsletter.content.generators import detect
from newsletter.errors import ConfigError

#: RFC 2606 / 6761 names: mail "from" them goes nowhere or is refused by every provider
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net")
PLACEHOLDER_TLDS = ("example", "test", "invalid", "localhost")

#: posts folders, in the order they are tried when the generator does not say
POST_FOLDERS = (
    "_posts",
    "content/posts",
    "content/blog",
    "src/posts",
    "src/blog",
    "posts",
    "blog",
    "content",
)

#: lines a site's .gitignore needs so that secrets and subscribers never reach the repository
GITIGNORE = (".env", "newsletter.db*", ".newsletter-secret", "outbox/")


def is_placeholder_address(address: str) -> bool:
    """True for an address on a reserved example domain (example.com/.org/.net, .test, ...)."""
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    if not domain:
        return True
    if any(domain == d or domain.endswith("." + d) for d in PLACEHOLDER_DOMAINS):
        return True
    return domain.rpartition(".")[2] in PLACEHOLDER_TLDS


@dataclass(frozen=True)
class DetectedSite:
    """What a site's own files say. Empty values mean "not found"."""

    generator: str = ""  # "jekyll", "hugo", ... or "" (a plain folder of posts)
    label: str = ""  # "Jekyll", "MkDocs Material blog"
    config: Path | None = None  # the generator's config file
    url: str = ""
    name: str = ""
    timezone: str = ""
    permalink: str = ""
    language: str = ""
    content: tuple[str, ...] = ()  # posts folders relative to the site root
    # what the generator's config says, which every run reads again from it
    from_generator: frozenset[str] = frozenset()


def _has_posts(folder: Path) -> bool:
    return folder.is_dir() and any(
        p.suffix in (".md", ".markdown") for p in folder.rglob("*") if p.is_file()
    )


def _posts_folder(root: Path) -> tuple[str, ...]:
    for name in POST_FOLDERS:
        if _has_posts(root / name):
            return (name,)
    return ()


def detect_site(root: Path) -> DetectedSite:
    """What ``root`` says about itself: generator, URL, name, zone, permalink, posts folder.

    The generator and its defaults come from :mod:`newsletter.content.generators` (Jekyll,
    Hugo, Eleventy, Zola, Pelican, MkDocs, Astro, Docusaurus), the same detection every command
    applies when it reads the settings; a plain folder of posts is found by its usual names.
    """
    found = detect(root)
    if found is None:
        return DetectedSite(content=_posts_folder(root))
    generator, config = found
    defaults = generator.defaults(root, config)
    content = tuple(defaults.content)
    if not any(_has_posts(root / folder) for folder in content):
        content = _posts_folder(root) or content  # found elsewhere: written, not left to it
    return DetectedSite(
        generator=defaults.generator,
        label=generator.label,
        config=config,
        url=defaults.url.rstrip("/"),
        name=defaults.name,
        timezone=defaults.timezone,
        permalink=defaults.permalink,
        language=defaults.language,
        content=content,
        from_generator=frozenset(
            key
            for key in ("url", "name", "timezone", "permalink", "language", "content")
            if getattr(defaults, key) and (key != "content" or content == tuple(defaults.content))
        ),
    )


@dataclass(frozen=True)
class SiteAnswers:
    """Everything ``newsletter.toml`` gets: what was detected, asked or given as flags."""

    name: str
    url: str
    content: tuple[str, ...]
    from_email: str
    from_name: str = ""
    reply_to: str = ""
    postal_address: str = ""
    unsubscribe_url: str = ""
    timezone: str = "UTC"
    permalink: str = ""
    language: str = ""
    generator: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)  # key -> where the value came from
    # [site] keys whose value is the generator's own (left to it: commented out)
    from_generator: frozenset[str] = frozenset()
    generator_config: str = ""  # its config file's name, e.g. "_config.yml"


def _toml(value: str | tuple[str, ...]) -> str:
    """A TOML string or array of strings (JSON's escapes are valid TOML basic strings)."""
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _line(key: str, value: str | tuple[str, ...], comment: str, *, commented: bool = False) -> str:
    text = ("# " if commented else "") + f"{key} = {_toml(value)}"
    return f"{text:<48} # {comment}" if comment else text


def config_text(answers: SiteAnswers) -> str:
    """The commented ``newsletter.toml`` for ``answers``."""
    src = answers.sources
    from_config = answers.from_generator

    def site_line(key: str, value: str | tuple[str, ...], what: str, *, unset: bool = False) -> str:
        """A [site] line; commented out when the generator's config says it (read every run)."""
        if key in from_config:
            return _line(key, value, f"{what} (from {answers.generator_config})", commented=True)
        return _line(key, value, f"{what} ({src[key]})" if key in src else what, commented=unset)

    placeholder = is_placeholder_address(answers.from_email)
    site_defaults, email_defaults = SiteSettings(), EmailSettings()
    lines = [
        "# Settings for `newsletter` (written by `newsletter init`). Every key, its type and",
        "# default: the settings reference in the docs (docs/reference/settings.md).",
        "# Secrets never go here: SENDGRID_API_KEY and NEWSLETTER_SECRET come from the",
        "# environment (see .env.example).",
        "",
        "[site]",
    ]
    if from_config:
        lines += [
            f"# Commented lines are read from {answers.generator_config} at every run, so they",
            "# follow it; uncomment one to override it here.",
        ]
    lines += [
        site_line("name", answers.name, "shown in emails as {{ site.name }}"),
        site_line("url", answers.url, "every post link and image is made absolute"),
        site_line("timezone", answers.timezone, "dates without a zone, tables"),
        site_line("content", answers.content, "posts folders, searched recursively"),
        site_line(
            "permalink",
            answers.permalink or site_defaults.permalink,
            ":year :month :day :slug :title :categories",
            unset=not answers.permalink,
        ),
    ]
    if answers.language:
        lines.append(site_line("language", answers.language, "lang of the email"))
    lines += [
        _line("logo_url", "", "absolute URL of a logo for the email header", commented=True),
        "",
        "# Values posts refer to as {{ site.KEY }} (Jekyll/Eleventy globals), e.g.",
        "# [site.values]",
        '# venue = "Harbour Hall"',
        "",
        "[email]",
    ]
    if placeholder:
        lines += [
            "# PLACEHOLDER: a real send refuses this address. Use one on a domain you",
            "# authenticated in SendGrid, or a verified single sender (`newsletter doctor`).",
        ]
    lines += [
        _line("from_email", answers.from_email, "the sender; replies go here unless reply_to"),
        _line("from_name", answers.from_name, "the name inboxes show"),
        _line("reply_to", answers.reply_to, "where replies go", commented=not answers.reply_to),
        _line(
            "postal_address",
            answers.postal_address,
            "in every footer; required for bulk mail in the US",
        ),
        _line(
            "archive_url",
            email_defaults.archive_url,
            "where the archive/ folder is published",
            commented=True,
        ),
        "",
        "[unsubscribe]",
        "# The public https URL of `newsletter serve` (unsubscribe pages, SendGrid's webhook).",
        "# Links in every email are BASE/u/TOKEN, so keep it stable.",
        _line(
            "base_url",
            answers.unsubscribe_url or "http://127.0.0.1:8000",
            "local only: fine for the outbox demo"
            if not answers.unsubscribe_url
            else "real sends need https",
        ),
        _line("webhook_public_key", "", "SendGrid > Mail Settings > Event Webhook", commented=True),
        "",
        "[send]",
        _line("transport", "auto", "sendgrid when SENDGRID_API_KEY is set, else the outbox"),
        _line("categories", ("newsletter",), "SendGrid categories on every message"),
        "",
        "[store]",
        _line("path", "newsletter.db", "subscribers, suppressions, campaigns: keep it safe"),
    ]
    return "\n".join(lines) + "\n"


ENV_EXAMPLE = """\
# Secrets for `newsletter`. Copy to .env (never commit it), fill in, then load it:
#   chmod 600 .env && set -a && . ./.env && set +a
#
# SendGrid API key (Settings > API Keys). Restricted access: Mail Send (full), Suppressions
# (read), and Unsubscribe Groups (read) when send.asm_group_id is set.
SENDGRID_API_KEY=
#
# Signs unsubscribe links: at least 32 random characters, the same for `send` and `serve`.
# Make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'
NEWSLETTER_SECRET=
"""


@dataclass(frozen=True)
class Written:
    """What :func:`write_site_files` did, for the command to print."""

    config: Path
    env_example: Path | None
    templates: list[Path]
    gitignore: Path | None


def write_site_files(
    root: Path,
    answers: SiteAnswers,
    *,
    templates_from: Path | None = None,
    force: bool = False,
) -> Written:
    """Write ``newsletter.toml`` and ``.env.example`` into ``root``; copy templates if asked.

    An existing ``newsletter.toml`` is kept (ConfigError) unless ``force``; an existing
    ``.env.example`` or template is never overwritten. A git repository's ``.gitignore`` gets the
    lines that keep secrets and the subscriber store out of it.
    """
    config = root / DEFAULT_CONFIG_NAME
    if config.exists() and not force:
        raise ConfigError(
            "a settings file is already here; edit it, or pass --force to replace it",
            path=config,
        )
    copied: list[Path] = []
    if templates_from is not None:
        target = root / EmailSettings().templates
        for source in sorted(templates_from.rglob("*.j2")):
            dest = target / source.relative_to(templates_from)
            if dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
            copied.append(dest)
    try:
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(config_text(answers), encoding="utf-8")
        env = root / ".env.example"
        env_written = None
        if not env.exists():
            env.write_text(ENV_EXAMPLE, encoding="utf-8")
            env_written = env
        gitignore = _update_gitignore(root)
    except OSError as err:
        raise ConfigError(f"cannot write the settings ({err.strerror})", path=config) from err
    return Written(config, env_written, copied, gitignore)


def _update_gitignore(root: Path) -> Path | None:
    if not (root / ".git").exists():
        return None
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    have = {line.strip() for line in text.splitlines()}
    missing = [line for line in GITIGNORE if line not in have]
    if not missing:
        return None
    prefix = text if not text or text.endswith("\n") else text + "\n"
    block = "# newsletter: secrets and subscribers stay out of git\n" + "\n".join(missing)
    path.write_text(prefix + block + "\n", encoding="utf-8")
    return path


def valid_url(value: str) -> bool:
    return bool(re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()))
