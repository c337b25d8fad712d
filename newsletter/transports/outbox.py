"""The outbox transport: one complete ``.eml`` file per recipient, plus an ``index.html``.

The default when no SendGrid key is set, and what ``make demo`` uses. Each file is the exact
multipart/alternative message the recipient would get (all real headers, the personal
unsubscribe link, ``List-Unsubscribe``), so it can be opened in a mail client; ``index.html``
lists them with a browser-viewable HTML copy of each.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path

from newsletter.errors import ProviderUnavailable
from newsletter.transports.base import Batch, BatchResult, Outcome, Status

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxTransport:
    name = "outbox"

    def __init__(self, root: Path, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.root = root
        self._now = now
        self._lock = threading.Lock()
        self.campaign_dirs: set[Path] = set()

    def folder(self, campaign_id: str) -> Path:
        return self.root / campaign_id

    def send(self, batch: Batch) -> BatchResult:
        from newsletter.mime import build_message  # the render stage's MIME builder

        folder = self.folder(batch.campaign_id)
        issue = batch.issue
        outcomes: list[Outcome] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "html").mkdir(exist_ok=True)
            for i, r in enumerate(batch.recipients):
                subject = batch.subject_prefix + issue.subject_template.fill(r.substitutions)
                headers = dict(r.headers)
                for key, value in r.custom_args.items():
                    headers[f"X-Newsletter-{key.replace('_', '-').title()}"] = value
                rid = r.custom_args.get("recipient_id", str(i))
                domain = batch.sender.email.rpartition("@")[2] or "localhost"
                body_html = issue.html_template.fill(r.substitutions)
                message = build_message(
                    from_email=batch.sender.email,
                    from_name=batch.sender.name,
                    reply_to=batch.sender.reply_to,
                    to=r.email,
                    to_name=r.name,
                    subject=subject,
                    html=body_html,
                    text=issue.text_template.fill(r.substitutions),
                    headers=headers,
                    now=self._now(),
                    message_id=f"<{batch.campaign_id}.{_UNSAFE.sub('_', rid)}@{domain}>",
                )
                stem = f"{batch.batch_no:05d}-{i:04d}-{_UNSAFE.sub('_', r.email)}"
                (folder / f"{stem}.eml").write_bytes(bytes(message))
                (folder / "html" / f"{stem}.html").write_text(body_html, encoding="utf-8")
                outcomes.append(Outcome(r.email, Status.ACCEPTED, message_id=stem))
        except OSError as err:
            raise ProviderUnavailable(f"cannot write to the outbox {folder}: {err}") from err
        with self._lock:
            self.campaign_dirs.add(folder)
        return BatchResult(outcomes)

    def close(self) -> None:
        with self._lock:
            folders = sorted(self.campaign_dirs)
        for folder in folders:
            write_index(folder)


def write_index(folder: Path) -> Path:
    """(Re)write ``index.html`` listing every message in an outbox campaign folder."""
    items = []

    def decoded(value: str) -> str:
        try:
            return str(make_header(decode_header(value)))
        except (ValueError, LookupError):
            return value

    for eml in sorted(folder.glob("*.eml")):
        to = subject = ""
        with eml.open("rb") as fh:
            for raw in fh:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    break
                if line.lower().startswith("to:"):
                    to = line[3:].strip()
                elif line.lower().startswith("subject:"):
                    subject = line[8:].strip()
        items.append(
            f"<tr><td>{html.escape(to)}</td><td>{html.escape(subject)}</td>"
            f'<td><a href="html/{html.escape(eml.stem)}.html">view</a></td>'
            f'<td><a href="{html.escape(eml.name)}">.eml</a></td></tr>'
        )
    page = (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>Outbox {html.escape(folder.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 8px}</style>"
        f"<h1>Outbox: {html.escape(folder.name)}</h1><p>{len(items)} messages</p>"
        "<table><tr><th>To</th><th>Subject</th><th>HTML</th><th>File</th></tr>"
        + "".join(items)
        + "</table>\n"
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
