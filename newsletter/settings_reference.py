"""The settings reference, generated from the settings dataclasses in :mod:`newsletter.config`.

``make docs`` turns :func:`settings_reference_markdown` into ``docs/reference/settings.md`` (a
mkdocs hook, ``docs/hooks.py``), so every key the code reads is listed with its type and
default and the page cannot drift from the code. Descriptions live in :data:`DESCRIPTIONS`; a
key without one falls back to the comment written beside it in ``config.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from newsletter import config

#: Environment variables `load_secrets` reads (secrets never go in the file).
ENVIRONMENT: dict[str, str] = {
    "SENDGRID_API_KEY": 'SendGrid API key. Set: `send.transport = "auto"` sends through '
    "SendGrid. Needs Mail Send; Suppressions read for the sync before a send; ASM when "
    "`send.asm_group_id` is set. `newsletter doctor` checks its scopes.",
    "NEWSLETTER_SECRET": "Signs unsubscribe links (at least 32 characters; make one with "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`). Required for real sends; "
    "keep it stable, changing it breaks every link already sent.",
    "SENDGRID_API_URL": "SendGrid's API base URL, default `https://api.sendgrid.com`. Tests point "
    "it at Prism or the recording fake on 127.0.0.1.",
    "NEWSLETTER_DATABASE_URL": "A `postgresql://` URL: the shared PostgreSQL store, instead of "
    "`store.url` or the SQLite file (`store.path`). The password never appears in output.",
}

DESCRIPTIONS: dict[str, str] = {
    "site.name": "The site's name, shown in emails as `{{ site.name }}` / `{{ site.title }}`.",
    "site.url": "Base URL of the site: every post URL, link and image is made absolute "
    "against it. Flag: `--site-url`.",
    "site.permalink": "Post URL pattern: `:slug :title :year :month :day :i_month :i_day "
    ":categories`. A post's own `permalink` wins. Flag: `--permalink`.",
    "site.timezone": "IANA time zone for dates without one, `--since`/`--month`, and the "
    "times shown in tables. Flag: `--timezone`.",
    "site.content": "One or more posts folders, searched recursively. Flag: `--content` "
    "(repeatable).",
    "site.logo_url": "Logo shown in the email header (absolute URL); empty: the site name.",
    "site.language": "`lang` of the email's HTML.",
    "site.values": "A table of values posts refer to as `{{ site.KEY }}` (Jekyll/Eleventy "
    'globals), e.g. `venue = "Harbour Hall"`.',
    "site.generator": "Site generator whose config fills the `[site]` keys not set here: "
    "`auto` (detect), `jekyll`, `hugo`, `eleventy`, `zola`, `pelican`, `mkdocs`, `astro`, "
    "`docusaurus`, or `none`. Flag: `--generator`.",
    "site.feeds": "RSS, Atom or JSON Feed URLs or files read as posts, next to (or instead of) "
    "the posts folders. Flag: `--feed` (repeatable).",
    "email.from_email": "Sender address. Real sends refuse a placeholder domain "
    "(example.com/.org/.net); use an address of a domain authenticated in SendGrid.",
    "email.from_name": "Sender name shown in the inbox.",
    "email.reply_to": "Reply-To address; empty: replies go to `from_email`.",
    "email.postal_address": "The sender's postal address in every footer (required for bulk "
    "mail in the US; `lint` reports it missing).",
    "email.templates": "Your template folder; a file there replaces the default of the same name.",
    "email.subject_digest": "Jinja expression for a digest's subject; variables `site`, "
    "`issue_date`, `lead`, `posts`, `first_name`.",
    "email.subject_post": "Subject of a one-post blast; `--subject` overrides either.",
    "email.intro": "Digest intro: Markdown text, or a path to a Markdown file; `--intro FILE` "
    "overrides.",
    "email.preheader": "The inbox preview line; empty: the lead post's excerpt.",
    "email.first_name_fallback": 'Used when a subscriber has no first name ("Hi there,").',
    "email.inliner": "CSS inliner: `premailer` or `css-inline` (faster, same layout).",
    "email.archive_url": 'Public URL where the web archive is published; the "View in '
    'browser" link points to `archive_url/<slug>/`.',
    "email.archive_dir": "Folder the web archive is written to (may point into the site's "
    "output folder).",
    "email.utm_source": "`utm_source` on links to the site's own domain; empty: no UTM tags.",
    "email.utm_medium": "`utm_medium` on links to the site.",
    "email.utm_campaign": "`utm_campaign` on links to the site; empty: the issue's slug.",
    "email.why": "Footer line saying why the reader gets this email.",
    "unsubscribe.base_url": "Public URL of `newsletter serve`; links are `BASE/u/TOKEN`. Real "
    "sends need https.",
    "unsubscribe.mailto": "Optional mailbox for the `mailto:` part of `List-Unsubscribe`.",
    "unsubscribe.webhook_public_key": "SendGrid's Event Webhook verification key (base64, "
    "public). Set: unsigned or badly signed events get 403.",
    "unsubscribe.webhook_max_age_seconds": "How old a signed webhook timestamp may be.",
    "send.transport": "`auto` (SendGrid when `SENDGRID_API_KEY` is set, else outbox), "
    "`outbox` or `sendgrid`. Flag: `--transport`.",
    "send.batch_size": "Recipients per request (at most 1000).",
    "send.concurrency": "Requests in flight at once. Flag: `--concurrency`.",
    "send.max_per_second": "Most recipients per second; 0 = no limit. Flag: `--max-per-second`.",
    "send.max_per_hour": "Most recipients per hour through one transport, across processes; "
    "0 = no limit. Flag: `--max-per-hour`.",
    "send.max_retries": "Retries of a batch on 429/5xx/refused connections before it is `failed`.",
    "send.max_consecutive_failures": "Failures in a row that pause the campaign (exit 5).",
    "send.timeout_seconds": "Timeout of every SendGrid request.",
    "send.categories": "SendGrid categories on every message (at most 10).",
    "send.asm_group_id": "SendGrid unsubscribe group (ASM); 0 = none.",
    "send.outbox_dir": "Folder the outbox transport writes to.",
    "send.sync_suppressions": "Pull SendGrid's suppression lists into the local list before "
    "every SendGrid send. Flag: `--skip-sync` turns it off for one run.",
    "theme.text": "Body text colour.",
    "theme.code_background": "Background of code blocks and inline code.",
    "theme.border": "Lines between cards and around tables.",
    "theme.font_family": "The body's CSS font stack (system fonts by default).",
    "theme.code_font_family": "The CSS font stack of code.",
    "signup.enabled": "Serve the subscribe form and its confirmation pages from `newsletter "
    "serve`; false: `serve` answers unsubscribe links and webhooks only.",
    "store.path": "The SQLite store: subscribers, suppressions, campaigns, ledger.",
    "store.url": "A `postgresql://USER@HOST/DB` URL selects the shared PostgreSQL store "
    "(see docs/postgresql.md); `NEWSLETTER_DATABASE_URL` overrides it. Empty: SQLite.",
}


@dataclass(frozen=True)
class SettingDoc:
    """One key of ``newsletter.toml``: where it lives, its TOML type, default and meaning."""

    section: str
    key: str
    type: str
    default: str
    description: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}"


def _toml_type(annotation: Any) -> str:
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in simple:
        return simple[annotation]
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return "string or list of strings"
    if origin is not None and issubclass(origin, Mapping):
        return "table"
    return str(annotation)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _source_comments(cls: type) -> dict[str, str]:
    """``name: type = default  # comment`` lines of a settings class, as {name: comment}."""
    comments: dict[str, str] = {}
    above: list[str] = []  # comment lines right above a field describe it too
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("# "))
            continue
        match = re.match(r"\s+(\w+): [^#=]+(?:=[^#]*)?(?:#\s*(.+))?$", line)
        if match:
            comments[match.group(1)] = (match.group(2) or " ".join(above)).strip()
        above = []
    return comments


def _dark_twin(section: str, key: str) -> str:
    """``dark_X``: what ``X`` is, in dark mode."""
    if not key.startswith("dark_"):
        return ""
    light = key.removeprefix("dark_")
    return f"`{light}` in dark mode (clients that honour `prefers-color-scheme: dark`)."


def settings_docs() -> Iterator[SettingDoc]:
    """Every key ``newsletter.toml`` may hold, in the order of the settings classes."""
    sections: Mapping[str, type] = config._SECTIONS
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        defaults = cls()
        comments = _source_comments(cls)
        for f in dataclasses.fields(cls):
            dotted = f"{section}.{f.name}"
            yield SettingDoc(
                section=section,
                key=f.name,
                type=_toml_type(hints[f.name]),
                default=_toml_value(getattr(defaults, f.name)),
                description=DESCRIPTIONS.get(dotted)
                or comments.get(f.name, "")
                or _dark_twin(section, f.name),
            )
    store_default = config.Settings().store_path
    yield SettingDoc(
        "store", "path", "string", _toml_value(store_default), DESCRIPTIONS["store.path"]
    )
    yield SettingDoc("store", "url", "string", '""', DESCRIPTIONS["store.url"])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_reference_markdown() -> str:
    """The whole reference page: one table per section, then the environment variables."""
    lines = [
        "# Settings reference",
        "",
        "<!-- generated from newsletter/config.py by newsletter/settings_reference.py; "
        "do not edit -->",
        "",
        "Every key `newsletter.toml` may hold, with its type and default, generated from the "
        "settings code. Unknown keys are an error. Relative paths are relative to the folder "
        "that holds the file. See [Settings](../settings.md) for a walk-through.",
    ]
    current = ""
    for doc in settings_docs():
        if doc.section != current:
            current = doc.section
            lines += [
                "",
                f"## `[{current}]`",
                "",
                "| key | type | default | what it does |",
                "|---|---|---|---|",
            ]
        lines.append(
            f"| `{doc.key}` | {doc.type} | `{_cell(doc.default)}` | {_cell(doc.description)} |"
        )
    lines += [
        "",
        "## Environment",
        "",
        "Secrets come from the environment only and are never printed or written.",
        "",
        "| variable | what it does |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {_cell(text)} |" for name, text in ENVIRONMENT.items()]
    return "\n".join(lines) + "\n"
