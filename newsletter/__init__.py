"""newsletter: turn a website's posts into a responsive email and send it to subscribers.

The public API is :class:`Newsletter` (see ``docs/api.md``)::

    from newsletter import IssueQuery, Newsletter, SendOptions

    nl = Newsletter.open("newsletter.toml")
    result = nl.send(IssueQuery(month="2026-10"), SendOptions(transport="outbox"))
    result.check()

Everything else is importable but may change between versions. The pipeline, one package or
module per stage (imports point down this list, never back up):

    config      settings from newsletter.toml (+ overrides); secrets from the environment
    content     posts on disk -> Post values (front matter, dates, URLs, excerpts)
    selection   which posts go into an issue, and why every other post was left out
    issue       IssueQuery: what the operator asks for, validated
    render      Jinja2 -> MJML -> HTML -> inlined CSS, plus the plain-text part; lint checks
    store       SQLite: subscribers, suppressions, campaigns and the per-recipient ledger
    transports  one small interface: outbox, SendGrid, memory
    campaign    identity, dispatcher, pacing, lock: every delivery guarantee
    api         Newsletter: the one object the CLI and scripts call
    web / cli   serve the endpoints / parse flags and print
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.api import CampaignView, Newsletter, Picked, Plan, SendOptions, SendResult
    from newsletter.errors import (
        CampaignIncomplete,
        CampaignLocked,
        CampaignPaused,
        CampaignUnfinished,
        ConfigError,
        LintFailed,
        NewsletterError,
        StoreError,
        TransportError,
    )
    from newsletter.issue import IssueQuery

# name -> module; imported on first use, so `import newsletter.errors` (the web server, the
# recording fake) does not load the renderer and the SendGrid client
_EXPORTS = {
    **dict.fromkeys(
        ("CampaignView", "Newsletter", "Picked", "Plan", "SendOptions", "SendResult"),
        "newsletter.api",
    ),
    **dict.fromkeys(
        (
            "CampaignIncomplete",
            "CampaignLocked",
            "CampaignPaused",
            "CampaignUnfinished",
            "ConfigError",
            "LintFailed",
            "NewsletterError",
            "StoreError",
            "TransportError",
        ),
        "newsletter.errors",
    ),
    "IssueQuery": "newsletter.issue",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'newsletter' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    "CampaignIncomplete",
    "CampaignLocked",
    "CampaignPaused",
    "CampaignUnfinished",
    "CampaignView",
    "ConfigError",
    "IssueQuery",
    "LintFailed",
    "Newsletter",
    "NewsletterError",
    "Picked",
    "Plan",
    "SendOptions",
    "SendResult",
    "StoreError",
    "TransportError",
    "__version__",
]
