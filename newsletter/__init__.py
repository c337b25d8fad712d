"""newsletter: turn a website's Markdown posts into a responsive email and send it.

The pipeline, one module per stage (imports point down this list, never back up):

    config      settings from newsletter.toml (+ CLI overrides); secrets from the environment
    content     posts on disk -> Post values (front matter, dates, URLs, excerpts)
    selection   which posts go into an issue, and why every other post was left out
    render      Jinja2 -> MJML -> HTML -> inlined CSS, plus the plain-text part; lint checks
    personalize per-recipient tokens, substituted by split-once / join-per-recipient
    subscribers CSV import and validation, segments
    store       SQLite: subscribers, suppressions, campaigns and the per-recipient ledger
    unsubscribe signed tokens and List-Unsubscribe headers
    transports  one small interface: outbox, SendGrid, memory, (tests: recording fake)
    dispatch    a campaign: batches, ledger transitions, retries, pacing
    web / cli   the composition roots: the only places that wire real parts together
"""

__version__ = "0.1.0"
