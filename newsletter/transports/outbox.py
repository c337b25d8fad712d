"""The outbox transport: one complete ``.eml`` file per recipient, plus an ``index.html``.

The default when no SendGrid key is set, and what ``make demo`` uses. Each file is the exact
multipart/alternative message the recipient would get (all real headers, the personal
unsubscribe link, ``List-Unsubscribe``), so it can be opened in a mail client; ``index.html``
lists them with a browser-viewable HTML copy of each.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import jinja2

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


@dataclass(frozen=True)
class OutboxEntry:
    """One message of an outbox folder, as the index lists it (headers decoded)."""

    date: str
    date_full: str
    to_name: str
    to_addr: str
    sender: str
    subject: str
    html: str
    eml: str


def read_entry(eml: Path) -> OutboxEntry:
    """The decoded headers of one ``.eml`` (only its header block is read)."""
    head = bytearray()
    with eml.open("rb") as fh:
        for raw in fh:
            if raw in (b"\r\n", b"\n"):
                break
            head += raw
    message = BytesHeaderParser(policy=policy.default).parsebytes(bytes(head))
    to_name, to_addr = parseaddr(str(message.get("To", "")))
    try:
        sent = parsedate_to_datetime(str(message.get("Date", "")))
        date, date_full = sent.strftime("%Y-%m-%d %H:%M"), sent.isoformat()
    except (TypeError, ValueError):
        date = date_full = ""
    return OutboxEntry(
        date=date,
        date_full=date_full,
        to_name=to_name,
        to_addr=to_addr,
        sender=str(message.get("From", "")),
        subject=str(message.get("Subject", "")),
        html=f"html/{quote(eml.stem)}.html",
        eml=quote(eml.name),
    )


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def write_index(folder: Path) -> Path:
    """(Re)write ``index.html``: every message of an outbox campaign folder, like an inbox."""
    entries = [read_entry(eml) for eml in sorted(folder.glob("*.eml"))]
    page = _TEMPLATES.get_template("outbox_index.html.j2").render(
        campaign=folder.name,
        messages=entries,
        sender=entries[0].sender if entries else "",
        subject=entries[0].subject if entries else "",
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
