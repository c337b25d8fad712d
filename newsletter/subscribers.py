"""Subscriber CSV import and export: validation, normalisation, merging, streaming.

Columns: ``email`` (required), ``first_name``, ``last_name``, ``tags`` (``;``-separated),
``subscribed_at`` (ISO 8601), and any other column, kept as a custom field for templates.
Header names are matched case-insensitively, with spaces read as ``_``.

Addresses are checked for syntax with email-validator (no DNS lookups) and normalised: trimmed,
domain lower-cased (and IDNA-normalised). Duplicates are found case-insensitively on the whole
address, local part included, as SendGrid does: the first spelling is kept, later rows are merged
into it (non-empty values win, tags add up). A suppressed address is never (re-)subscribed.

The file is read line by line and written in chunks of a few thousand rows, one transaction each,
so a million-row import runs in flat memory and the unsubscribe endpoint can write in between.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import InputError
from newsletter.store.audience import AudienceStore, Subscriber
from newsletter.store.bulk import NewSubscriber
from newsletter.store.keys import email_key
from newsletter.store.signup import Consent, SignupStore

KNOWN_COLUMNS = ("email", "first_name", "last_name", "tags", "subscribed_at")
CHUNK_ROWS = 2000
# Longer values are rejected at import: each one is copied into every SendGrid personalization
# (substitutions), which must stay under 10,000 bytes in all, and no real name is this long.
MAX_NAME_CHARS = 200
MAX_FIELD_CHARS = 1000
# A subscriber list has a handful of columns; a header past these is not one (and each column
# becomes a custom field sent with every email)
MAX_COLUMNS = 1000
MAX_HEADER_BYTES = 1024 * 1024
NOT_A_LIST = (
    "Is this the subscriber list? Its first line must name the columns (email, first_name, ...)"
)
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


@dataclass(frozen=True)
class Notice:
    """A row that was not imported (``rejected``) or not subscribed (``suppressed``)."""

    path: str
    line: int
    message: str
    kind: str = "rejected"

    def format(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class ImportReport:
    path: str
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    suppressed: int = 0
    duplicates: int = 0
    had_bom: bool = False
    dry_run: bool = False
    custom_fields: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        return (
            f"{self.path}: {self.rows} rows: {self.added} {verb}added, "
            f"{self.updated} {verb}updated, "
            f"{self.unchanged} unchanged, {self.rejected} rejected, {self.suppressed} suppressed "
            f"(not subscribed), {self.duplicates} duplicates merged"
        )


def _column(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _check_encoding(name: str, path: str) -> str:
    try:
        info = codecs.lookup(name)
    except LookupError as err:
        raise InputError(f"unknown encoding {name!r}; try utf-8 or cp1252", path=path) from err
    if "\n".encode(info.name) != b"\n" or ",".encode(info.name) != b",":
        raise InputError(
            f"encoding {name!r} is not supported; save the file as CSV UTF-8", path=path
        )
    return info.name


_UTF16_32 = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class _Lines:
    """Decoded lines of a binary file; remembers which physical lines failed to decode."""

    def __init__(self, f: IO[bytes], encoding: str, path: str) -> None:
        self.f = f
        self.encoding = encoding
        self.path = path
        self.bad: dict[int, str] = {}
        self.had_bom = False

    def __iter__(self) -> Iterator[str]:
        first = self.f.readline(MAX_HEADER_BYTES + 1)
        if len(first) > MAX_HEADER_BYTES:
            raise InputError(
                f"the header line is longer than {MAX_HEADER_BYTES // (1024 * 1024)} MB. "
                + NOT_A_LIST,
                path=self.path,
                line=1,
            )
        for n, raw in enumerate(itertools.chain([first] if first else [], self.f), start=1):
            if n == 1:
                for bom, name in _UTF16_32:
                    if raw.startswith(bom):
                        raise InputError(
                            f"the file is {name} (it starts with a {name} byte-order mark); "
                            "save it as 'CSV UTF-8' and import again",
                            path=self.path,
                            line=1,
                        )
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                    self.had_bom = True
                if b"\r" in raw.rstrip(b"\n").rstrip(b"\r"):
                    raise InputError(
                        "the file uses old Mac line endings (CR only); re-save it with LF or "
                        "CRLF line endings (e.g. 'CSV UTF-8' in Excel) and import again",
                        path=self.path,
                        line=1,
                    )
                if b"\x00" in raw:
                    raise InputError(
                        "the file contains NUL bytes: it looks like UTF-16 without a byte-order "
                        "mark; save it as 'CSV UTF-8' and import again",
                        path=self.path,
                        line=1,
                    )
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError as err:
                byte = raw[err.start : err.start + 1].hex()
                self.bad[n] = (
                    f"not valid {self.encoding} (byte 0x{byte} at column {err.start + 1}); "
                    "the file may be Windows-1252/Latin-1: re-save it as UTF-8 or import it "
                    "with --encoding cp1252"
                )
                yield raw.decode(self.encoding, errors="replace")


@lru_cache(maxsize=50_000)
def _domain(domain: str) -> str | EmailNotValidError:
    """The normalised domain, checked once per distinct domain (lists repeat a few domains)."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError as err:
        return err


# RFC 5322 dot-atom with ASCII atext: a plain local part that email-validator accepts unchanged
_ATEXT = r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]+"
_PLAIN_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


def normalise_email(raw: str) -> str:
    """A syntactically valid address, normalised; raises ``EmailNotValidError``.

    Same answers as ``validate_email(raw, check_deliverability=False).normalized`` (a test
    compares the two on thousands of addresses), but fast for the common case: a plain ASCII
    local part is accepted as it is and the domain is checked once per distinct domain. Anything
    else goes through email-validator in full, which also gives the error message.
    """
    local, at, domain = raw.rpartition("@")
    if at and _PLAIN_LOCAL.fullmatch(local):
        checked = _domain(domain)
        if isinstance(checked, str):
            address = f"{local}@{checked}"
            if len(address) <= 254 and address.isascii():
                return address
    return validate_email(raw, check_deliverability=False).normalized


def _parse_date(value: str) -> str:
    text = value.strip()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="seconds")


class _RowReader:
    def __init__(self, path: str, header: Sequence[str], extra_tags: Sequence[str]) -> None:
        self.path = path
        self.columns = [_column(h) for h in header]
        self.width = len(header)
        self.extra_tags = tuple(extra_tags)
        # an export's consent and suppression columns describe the old store, not the person
        skip = {*KNOWN_COLUMNS, *CONSENT_COLUMNS, "suppressed"}
        self.custom = [(i, c) for i, c in enumerate(self.columns) if c not in skip]
        self.index = {c: i for i, c in enumerate(self.columns)}

    def read(self, line: int, row: list[str]) -> NewSubscriber | str:
        if len(row) < self.width:  # trailing empty columns left out: read them as empty
            row = row + [""] * (self.width - len(row))
        if len(row) > self.width:
            return (
                f"{len(row)} fields, but the header has {self.width}; quote values that "
                'contain commas ("Smith, Jr.")'
            )
        idx = self.index
        raw_email = row[idx["email"]].strip()
        if not raw_email:
            return "no email address"
        try:
            email = normalise_email(raw_email)
        except EmailNotValidError as err:
            return f"invalid email address {raw_email!r}: {err}"
        names = {}
        for col in ("first_name", "last_name"):
            value = row[idx[col]].strip() if col in idx else ""
            if _CONTROL.intersection(value):
                return f"{col} contains a line break or control character"
            if len(value) > MAX_NAME_CHARS:
                return (
                    f"{col} is {len(value):,} characters long; at most {MAX_NAME_CHARS} are "
                    "allowed (is a column shifted or a note pasted into it?)"
                )
            names[col] = value
        tags: tuple[str, ...] = self.extra_tags
        if "tags" in idx:
            given = [t.strip() for t in row[idx["tags"]].split(";")]
            tags = tuple(dict.fromkeys([*(t for t in given if t), *self.extra_tags]))
        subscribed_at = None
        if "subscribed_at" in idx and row[idx["subscribed_at"]].strip():
            try:
                subscribed_at = _parse_date(row[idx["subscribed_at"]])
            except ValueError:
                return (
                    f"subscribed_at {row[idx['subscribed_at']]!r} is not a date; use ISO 8601 "
                    "such as 2024-05-01 or 2024-05-01T09:30:00Z"
                )
        fields = {c: row[i].strip() for i, c in self.custom if row[i].strip()}
        for c, value in fields.items():
            if len(value) > MAX_FIELD_CHARS:
                return (
                    f"custom field {c!r} is {len(value):,} characters long; at most "
                    f"{MAX_FIELD_CHARS} are allowed, since every field is sent with each email"
                )
        return NewSubscriber(
            line=line,
            email=email,
            key=email_key(email),
            first_name=names["first_name"],
            last_name=names["last_name"],
            tags=tags,
            fields=fields,
            subscribed_at=subscribed_at,
        )


def _header(path: str, reader: Iterator[list[str]], delimiter: str) -> list[str]:
    for header in reader:
        if header:
            break
    else:
        raise InputError("the file is empty; expected a header row with an email column", path=path)
    if len(header) > MAX_COLUMNS:
        raise InputError(
            f"the header has {len(header):,} columns; at most {MAX_COLUMNS:,} are allowed. "
            + NOT_A_LIST,
            path=path,
            line=1,
        )
    columns = [_column(h) for h in header]
    dupes = sorted(c for c, n in Counter(columns).items() if n > 1)
    if dupes:
        raise InputError(f"column {dupes[0]!r} appears twice in the header", path=path, line=1)
    if "email" not in columns:
        if any("@" in h for h in header):
            hint = "the first row looks like data: add a header row such as email,first_name"
        elif len(header) == 1 and delimiter != ";" and ";" in header[0]:
            hint = "the columns look separated by ';': pass --delimiter ';'"
        else:
            named = ", ".join(repr(h[:40]) for h in header[:10])
            more = f" and {len(header) - 10:,} more" if len(header) > 10 else ""
            hint = f"the header has {named}{more}; name one column email"
        raise InputError(f"no 'email' column: {hint}", path=path, line=1)
    if "" in columns:
        raise InputError(
            f"column {columns.index('') + 1} of the header has no name", path=path, line=1
        )
    return header


def import_subscribers(
    store: AudienceStore,
    path: Path,
    *,
    now: datetime,
    tags: Sequence[str] = (),
    dry_run: bool = False,
    encoding: str = "utf-8",
    delimiter: str = ",",
    on_notice: Callable[[Notice], None] = lambda n: None,
    chunk_rows: int = CHUNK_ROWS,
    status: str = "confirmed",
) -> ImportReport:
    """Import a CSV of subscribers; every row not imported is reported through ``on_notice``.

    ``status="pending"`` is for a list with no recorded consent: new subscribers are not mailed
    until they confirm (see :func:`newsletter.signup.queue_confirmations`), and each gets a
    consent record "imported" naming the file (its name only, not the folder).
    """
    name = str(path)
    enc = _check_encoding(encoding, name)
    if tags and any(not t.strip() or ";" in t for t in tags):
        raise InputError("a --tag must be non-empty and must not contain ';'", path=name)
    report = ImportReport(path=name, dry_run=dry_run)
    source = f"import:{path.name}"
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; streaming
    except OSError as err:
        raise InputError(f"cannot read the file ({err.strerror})", path=name) from err
    with f, store.import_session() as session:
        lines = _Lines(f, enc, name)
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        try:
            header = _header(name, reader, delimiter)
        except (csv.Error, InputError) as err:
            if 1 in lines.bad:  # the real problem is the encoding
                raise InputError(lines.bad[1], path=name, line=1) from err
            if isinstance(err, InputError):
                raise
            raise InputError(f"not a readable CSV header ({err})", path=name, line=1) from err
        if 1 in lines.bad:
            raise InputError(lines.bad[1], path=name, line=1)
        rows = _RowReader(name, header, [t.strip() for t in tags])
        report.custom_fields = tuple(c for _, c in rows.custom)
        report.had_bom = lines.had_bom
        chunk: list[NewSubscriber] = []
        last_line = reader.line_num

        def flush() -> None:
            counts = session.apply(
                chunk, now=now, dry_run=dry_run, status=status, consent_source=source
            )
            report.added += counts.added
            report.updated += counts.updated
            report.unchanged += counts.unchanged
            report.suppressed += counts.suppressed
            report.duplicates += counts.duplicates
            for line, email in counts.suppressed_lines:
                on_notice(
                    Notice(name, line, f"{email} is suppressed; not subscribed", "suppressed")
                )
            chunk.clear()

        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                report.rows += 1
                report.rejected += 1
                on_notice(Notice(name, reader.line_num, f"not valid CSV ({err})"))
                last_line = reader.line_num
                continue
            start, last_line = last_line + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            report.rows += 1
            bad = [lines.bad.pop(n) for n in range(start, last_line + 1) if n in lines.bad]
            result = bad[0] if bad else rows.read(start, row)
            if isinstance(result, str):
                report.rejected += 1
                on_notice(Notice(name, start, result))
                continue
            chunk.append(result)
            if len(chunk) >= chunk_rows:
                flush()
        if chunk:
            flush()
    if report.had_bom:
        report.notes.append(f"{name}: the file starts with a UTF-8 byte-order mark; ignored it")
    return report


def _csv_line(values: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


# Consent columns of an export. A later import reads them back as custom fields, so they are
# named apart from anything a template would use.
CONSENT_COLUMNS = (
    "status",
    "consent_at",
    "consent_source",
    "consent_page",
    "consent_client_hash",
    "confirmed_at",
)


def export_subscribers(
    store: AudienceStore,
    out: IO[str],
    *,
    segments: Sequence[str] = (),
    include_suppressed: bool,
    consents: SignupStore | None = None,
) -> int:
    """Write subscribers as CSV in the import format (custom fields as extra columns).

    With ``consents``, each row also says its status (pending or confirmed) and its latest
    consent: when and where it was given ("imported" or the form's request), the page, the
    keyed hash of the client address, and when the reader confirmed. Pending subscribers are
    exported only with ``include_suppressed`` (they are not on the mailing list yet).
    """
    custom = store.custom_field_names()
    columns = [*KNOWN_COLUMNS, *custom]
    if consents is not None:
        columns.extend(CONSENT_COLUMNS)
    if include_suppressed:
        columns.append("suppressed")
    out.write(_csv_line(columns))
    n = 0
    rows = store.iter_subscribers_with_reasons(segments, active_only=not include_suppressed)
    page: list[tuple[Subscriber, str]] = []

    def flush() -> None:
        found = consents.latest_consents([s.email for s, _ in page]) if consents else {}
        for sub, reason in page:
            values = [
                sub.email,
                sub.first_name,
                sub.last_name,
                ";".join(sub.tags),
                sub.subscribed_at or "",
                *(sub.fields.get(c, "") for c in custom),
            ]
            if consents is not None:
                values.extend(_consent_values(sub, found.get(email_key(sub.email), {})))
            if include_suppressed:
                values.append(reason)
            out.write(_csv_line(values))
        page.clear()

    for item in rows:
        page.append(item)
        n += 1
        if len(page) >= 1000:
            flush()
    flush()
    return n


def _consent_values(sub: Subscriber, latest: Mapping[str, Consent]) -> list[str]:
    given = latest.get("requested") or latest.get("imported")
    confirmed = latest.get("confirmed")
    return [
        sub.status,
        given.at if given else "",
        given.source if given else "",
        given.page if given else "",
        given.client_hash if given else "",
        confirmed.at if confirmed else "",
    ]


def subscriber_json(sub: Subscriber, suppression: str = "") -> str:
    """One subscriber as a JSON object (a line of ``subscribers list --jsonl``)."""
    return json.dumps(subscriber_record(sub, suppression), ensure_ascii=False)


def subscriber_record(sub: Subscriber, suppression: str = "") -> dict[str, Any]:
    """One subscriber as the JSON-ready object ``subscribers list --json`` prints."""
    return {
        "id": sub.id,
        "email": sub.email,
        "first_name": sub.first_name,
        "last_name": sub.last_name,
        "tags": list(sub.tags),
        "fields": dict(sub.fields),
        "subscribed_at": sub.subscribed_at,
        "status": sub.status,
        "suppressed": suppression or None,
    }
