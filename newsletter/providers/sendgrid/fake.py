"""A recording fake of SendGrid's v3 ``mail/send``: a real HTTP server for tests and benchmarks.

It checks what Prism does not (1000 recipients per request in total, no address twice, no
reserved headers, substitutions + custom_args <= 10,000 bytes per personalization, body <= 30 MB,
``send_at`` <= 72 h ahead), records every accepted message to a SQLite file (so a test can read
it even after killing the client), and injects failures from a script or at random:

    ok            202 Accepted
    429           rate limited, with X-RateLimit-Reset (now + reset_seconds; in ms if asked)
    500 / 503     server error
    slow          answer after ``slow_seconds`` (longer than a client's timeout: unknown)
    drop          record the messages, then break the connection mid-answer (accepted, unknown)
    drop-before   break the connection without recording (not accepted, unknown)

It also serves SendGrid's paged suppression lists (``GET /v3/suppression/unsubscribes`` ...,
``/v3/asm/groups/ID/suppressions``) from a fixed set, for ``suppressions sync``, with its own
script of faults (``list_faults``: 429, 500, 503, slow).

Run it: ``python -m newsletter.fakes.sendgrid --db sent.sqlite --fail-rate 0.2 --latency 0.02``
(prints ``listening on http://127.0.0.1:PORT``), then point ``SENDGRID_API_URL`` at it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

MAX_RECIPIENTS = 1000
MAX_PERSONAL_BYTES = 10_000
MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_SCHEDULE_SECONDS = 72 * 3600
RESERVED = frozenset(
    (
        *("x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type"),
        *("content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"),
    )
)
FAULTS = ("ok", "429", "500", "503", "slow", "drop", "drop-before")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    no INTEGER PRIMARY KEY, at REAL NOT NULL, fault TEXT NOT NULL, status INTEGER NOT NULL,
    recipients INTEGER NOT NULL, error TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    sandbox INTEGER NOT NULL DEFAULT 0, send_at INTEGER NOT NULL DEFAULT 0,
    batch_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS scheduled_sends (
    batch_id TEXT PRIMARY KEY, status TEXT NOT NULL DEFAULT '', created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    request_no INTEGER NOT NULL, email TEXT NOT NULL, campaign_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL, subject TEXT NOT NULL, list_unsubscribe TEXT NOT NULL,
    substitutions TEXT NOT NULL
);
"""


@dataclass
class FaultPlan:
    """Which answer each request gets: ``script`` first, then ``fail_rate`` over ``kinds``."""

    script: list[str] = field(default_factory=list)
    fail_rate: float = 0.0
    kinds: Sequence[str] = ("429", "500", "503")
    seed: int = 0
    latency: float = 0.0  # added to every answer, seconds
    slow_seconds: float = 5.0
    reset_seconds: float = 1.0  # X-RateLimit-Reset = now + this
    reset_unit: str = "s"  # "ms": X-RateLimit-Reset in milliseconds, as some proxies send it
    # answers for the suppression-list GETs, one per request before the real page: "429",
    # "500", "503" or "slow"
    list_faults: list[str] = field(default_factory=list)
    refuse: frozenset[str] = frozenset()  # addresses answered with a 400 naming their field

    def __post_init__(self) -> None:
        for step in [*self.script, *self.kinds]:
            if step not in FAULTS:
                raise ValueError(f"unknown fault {step!r}; use one of {', '.join(FAULTS)}")
        for step in self.list_faults:
            if step not in ("429", "500", "503", "slow"):
                raise ValueError(f"unknown list fault {step!r}; use 429, 500, 503 or slow")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.fail_rate and self._rng.random() < self.fail_rate:
                return self._rng.choice(list(self.kinds))
            return "ok"


class Recorder:
    """Appends accepted messages to a SQLite file (one transaction per request)."""

    def __init__(self, path: Path, *, keep_messages: bool = True) -> None:
        self.path = path
        self.keep_messages = keep_messages
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        row = self.conn.execute("SELECT coalesce(max(no), 0) FROM requests").fetchone()
        self._no = int(row[0])

    def record(
        self, fault: str, status: int, payload: dict[str, Any] | None, error: str = ""
    ) -> str:
        with self._lock:
            self._no += 1
            no = self._no
            message_id = f"fake-{no}" if status == 202 else ""
            people = payload.get("personalizations", []) if payload else []
            sandbox = bool(
                payload and payload.get("mail_settings", {}).get("sandbox_mode", {}).get("enable")
            )
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT INTO requests(no, at, fault, status, recipients, error, message_id,"
                " sandbox, send_at, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    no,
                    time.time(),
                    fault,
                    status,
                    sum(len(p.get("to", [])) for p in people),
                    error,
                    message_id,
                    int(sandbox),
                    int(payload.get("send_at", 0)) if payload else 0,
                    str(payload.get("batch_id", "")) if payload else "",
                ),
            )
            if status == 202 and self.keep_messages and payload:
                subject = payload.get("subject", "")
                self.conn.executemany(
                    "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            no,
                            to["email"],
                            p.get("custom_args", {}).get("campaign_id", ""),
                            p.get("custom_args", {}).get("recipient_id", ""),
                            p.get("subject", subject),
                            p.get("headers", {}).get("List-Unsubscribe", ""),
                            json.dumps(p.get("substitutions", {})),
                        )
                        for p in people
                        for to in p.get("to", [])
                    ],
                )
            self.conn.execute("COMMIT")
            return message_id

    def close(self) -> None:
        self.conn.close()


def validate(payload: Any, size: int, *, now: float) -> tuple[str, str] | None:
    """The first broken rule as ``(field, message)``, or None when the request is valid."""
    if size > MAX_BODY_BYTES:
        return "", f"request body is {size} bytes; the limit is {MAX_BODY_BYTES}"
    if not isinstance(payload, dict):
        return "", "the body must be a JSON object"
    if not isinstance(payload.get("from"), dict) or not payload["from"].get("email"):
        return "from.email", "The from object must be provided for every email send."
    content = payload.get("content")
    if not isinstance(content, list) or not content:
        return "content", "Unless a valid template_id is provided, content is required."
    people = payload.get("personalizations")
    if not isinstance(people, list) or not people:
        return "personalizations", "The personalizations field is required."
    seen: set[str] = set()
    total = 0
    for i, p in enumerate(people):
        where = f"personalizations.{i}"
        for kind in ("to", "cc", "bcc"):
            for addr in p.get(kind, []) or []:
                total += 1
                email = str(addr.get("email", "")).lower()
                if email in seen:
                    return f"{where}.{kind}", f"Each email address must be unique: {email}"
                seen.add(email)
        for name in p.get("headers", {}) or {}:
            if name.lower() in RESERVED:
                return f"{where}.headers", f"The header {name} is reserved."
        personal = 0
        for part in ("substitutions", "custom_args"):
            for k, v in (p.get(part) or {}).items():
                if not isinstance(v, str):
                    return f"{where}.{part}", f"{part} values must be strings ({k})"
                personal += len(k.encode()) + len(v.encode())
        if personal > MAX_PERSONAL_BYTES:
            return where, f"substitutions and custom_args take {personal} bytes (limit 10000)"
        send_at = p.get("send_at") or payload.get("send_at") or 0
        if send_at and send_at - now > MAX_SCHEDULE_SECONDS:
            return f"{where}.send_at", "send_at cannot be more than 72 hours in the future."
    if total > MAX_RECIPIENTS:
        return "personalizations", f"{total} recipients in one request; the limit is 1000"
    return None


def refused(payload: dict[str, Any], plan: FaultPlan) -> tuple[str, str] | None:
    """The first address of ``plan.refuse`` in the request, as SendGrid names a bad one."""
    if not plan.refuse:
        return None
    for i, p in enumerate(payload.get("personalizations", [])):
        for j, addr in enumerate(p.get("to", [])):
            if str(addr.get("email", "")).lower() in plan.refuse:
                return f"personalizations.{i}.to.{j}.email", "Does not contain a valid address."
    return None


class MailSend:
    """The ``POST /v3/mail/send`` endpoint, as a raw ASGI app so it can break connections."""

    def __init__(self, plan: FaultPlan, recorder: Recorder, *, clock: Callable[[], float]) -> None:
        self.plan = plan
        self.recorder = recorder
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        fault = self.plan.next()
        if self.plan.latency:
            await asyncio.sleep(self.plan.latency)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) < 10:
            self.recorder.record(fault, 401, None, "missing bearer token")
            await _json(send, 401, {"errors": [{"message": "authorization required"}]})
            return
        if fault == "drop-before":
            self.recorder.record(fault, 0, None, "dropped before accepting")
            await _break(send)
            return
        if fault in ("429", "500", "503"):
            status = int(fault)
            headers: dict[str, str] = {}
            if status == 429:
                reset = self.clock() + self.plan.reset_seconds
                stamp = int(reset * 1000) if self.plan.reset_unit == "ms" else int(reset + 0.999)
                headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
                headers["X-RateLimit-Reset"] = str(stamp)
            self.recorder.record(fault, status, None, "injected")
            await _json(send, status, {"errors": [{"message": f"injected {status}"}]}, headers)
            return
        try:
            payload = json.loads(body)
        except ValueError:
            self.recorder.record(fault, 400, None, "invalid JSON")
            await _json(send, 400, {"errors": [{"message": "Bad Request", "field": None}]})
            return
        problem = validate(payload, len(body), now=self.clock()) or refused(payload, self.plan)
        if problem:
            self.recorder.record(fault, 400, payload, problem[1])
            err = {"message": problem[1], "field": problem[0] or None}
            await _json(send, 400, {"errors": [err]})
            return
        message_id = self.recorder.record(fault, 202, payload)
        if fault == "drop":
            await _break(send)
            return
        if fault == "slow":
            await asyncio.sleep(self.plan.slow_seconds)
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [(b"x-message-id", message_id.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


class _Dropped(Exception):
    """Raised after a partial answer so the server closes the connection."""


async def _break(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-length", b"100")],
        }
    )
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise _Dropped("connection dropped on purpose")


async def _json(
    send: Send, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(data).encode()
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


#: what a restricted key made for this tool can do: send, read suppressions and senders
SENDING_SCOPES = (
    "mail.send",
    "mail.batch.create",
    "user.scheduled_sends.create",
    "suppression.read",
    "suppression.unsubscribes.read",
    "suppression.bounces.read",
    "suppression.spam_reports.read",
    "asm.groups.suppressions.read",
    "sender_verification.read",
    "whitelabel.read",
)


@dataclass(frozen=True)
class Account:
    """The SendGrid account behind the fake's API key: its scopes and sender identities."""

    scopes: tuple[str, ...] = SENDING_SCOPES
    verified_senders: tuple[str, ...] = ()
    authenticated_domains: tuple[str, ...] = ()


def create_app(
    plan: FaultPlan,
    recorder: Recorder,
    *,
    clock: Callable[[], float] = time.time,
    suppressions: Mapping[str, Sequence[str]] | None = None,
    account: Account | None = None,
) -> Starlette:
    """The fake. ``suppressions`` maps ``unsubscribes``/``bounces``/``spam_reports`` or
    ``group:ID`` to addresses that SendGrid's paged suppression endpoints list. ``account`` is
    what ``GET /v3/scopes``, ``/v3/verified_senders`` and ``/v3/whitelabel/domains`` answer."""
    lists = {k: list(v) for k, v in (suppressions or {}).items()}
    acct = account or Account()

    def page(request: Request, items: list[Any]) -> JSONResponse:
        try:
            limit = min(500, int(request.query_params.get("limit", "500")))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return JSONResponse({"errors": [{"message": "bad paging"}]}, status_code=400)
        return JSONResponse(items[offset : offset + limit])

    async def list_fault() -> JSONResponse | None:
        with plan._lock:
            fault = plan.list_faults.pop(0) if plan.list_faults else ""
        if fault == "slow":
            await asyncio.sleep(plan.slow_seconds)
        elif fault:
            status = int(fault)
            headers = {"X-RateLimit-Reset": str(int(clock() + plan.reset_seconds + 0.999))}
            body = {"errors": [{"message": f"injected {status}"}]}
            return JSONResponse(body, status, headers=headers if status == 429 else None)
        return None

    async def global_list(request: Request) -> JSONResponse:
        if fault := await list_fault():
            return fault
        name = request.path_params["name"]
        return page(request, [{"email": e, "created": 0} for e in lists.get(name, [])])

    async def group_list(request: Request) -> JSONResponse:
        if fault := await list_fault():
            return fault
        return page(request, lists.get(f"group:{request.path_params['group']}", []))

    def unauthorized(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization", "").startswith("Bearer "):
            return None
        return JSONResponse({"errors": [{"message": "authorization required"}]}, 401)

    async def create_batch(request: Request) -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        batch_id = f"fakebatch{secrets.token_hex(8)}"
        with recorder._lock:
            recorder.conn.execute(
                "INSERT INTO scheduled_sends(batch_id, created) VALUES (?, ?)",
                (batch_id, clock()),
            )
        return JSONResponse({"batch_id": batch_id}, 201)

    async def scheduled_send(request: Request) -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        try:
            data = json.loads(await request.body())
            batch_id, status = str(data["batch_id"]), str(data.get("status", "pause"))
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": [{"message": "batch_id is required"}]}, 400)
        if status not in ("pause", "cancel"):
            return JSONResponse(
                {"errors": [{"field": "status", "message": "pause or cancel"}]}, 400
            )
        with recorder._lock:
            found = recorder.conn.execute(
                "UPDATE scheduled_sends SET status = ? WHERE batch_id = ?", (status, batch_id)
            ).rowcount
        if not found:
            return JSONResponse({"errors": [{"field": "batch_id", "message": "unknown"}]}, 400)
        return JSONResponse({"batch_id": batch_id, "status": status}, 201)

    async def scopes(request: Request) -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        return JSONResponse({"scopes": list(acct.scopes)})

    async def verified_senders(request: Request) -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        if "sender_verification.read" not in acct.scopes:
            return JSONResponse({"errors": [{"message": "access forbidden"}]}, 403)
        results = [
            {"id": n, "nickname": email, "from_email": email, "verified": True}
            for n, email in enumerate(acct.verified_senders, start=1)
        ]
        return JSONResponse({"results": results})

    async def domains(request: Request) -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        if "whitelabel.read" not in acct.scopes:
            return JSONResponse({"errors": [{"message": "access forbidden"}]}, 403)
        return JSONResponse(
            [
                {"id": n, "domain": d, "subdomain": "em", "valid": True, "default": n == 1}
                for n, d in enumerate(acct.authenticated_domains, start=1)
            ]
        )

    async def stats(request: Request) -> JSONResponse:
        with recorder._lock:
            rows = recorder.conn.execute(
                "SELECT status, count(*), sum(recipients) FROM requests GROUP BY status"
            ).fetchall()
        return JSONResponse({str(s): {"requests": n, "recipients": r} for s, n, r in rows})

    return Starlette(
        routes=[
            Route("/v3/mail/send", MailSend(plan, recorder, clock=clock), methods=["POST"]),
            Route("/_fake/stats", stats),
            Route("/v3/mail/batch", create_batch, methods=["POST"]),
            Route("/v3/user/scheduled_sends", scheduled_send, methods=["POST"]),
            Route("/v3/suppression/{name}", global_list, methods=["GET"]),
            Route("/v3/asm/groups/{group}/suppressions", group_list, methods=["GET"]),
            Route("/v3/scopes", scopes, methods=["GET"]),
            Route("/v3/verified_senders", verified_senders, methods=["GET"]),
            Route("/v3/whitelabel/domains", domains, methods=["GET"]),
        ]
    )


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_in_thread(
    plan: FaultPlan,
    db: Path,
    *,
    keep_messages: bool = True,
    suppressions: Mapping[str, Sequence[str]] | None = None,
    account: Account | None = None,
) -> Iterator[str]:
    """Run the fake in a background thread; yields its base URL (``http://127.0.0.1:PORT``)."""
    recorder = Recorder(db, keep_messages=keep_messages)
    sock = free_socket()
    port = sock.getsockname()[1]
    app = create_app(plan, recorder, suppressions=suppressions, account=account)
    config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        recorder.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m newsletter.fakes.sendgrid", description=__doc__)
    ap.add_argument("--db", type=Path, required=True, help="SQLite file that records messages")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free one)")
    ap.add_argument("--script", default="", help="comma-separated faults for the first requests")
    ap.add_argument("--fail-rate", type=float, default=0.0, help="probability of a fault")
    ap.add_argument("--kinds", default="429,500,503", help="faults drawn at random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    ap.add_argument("--slow-seconds", type=float, default=5.0)
    ap.add_argument("--reset-seconds", type=float, default=1.0)
    ap.add_argument("--reset-unit", choices=("s", "ms"), default="s")
    ap.add_argument("--list-faults", default="", help="comma-separated faults for list GETs")
    ap.add_argument("--no-messages", action="store_true", help="record requests only")
    ap.add_argument(
        "--unsubscribed",
        action="append",
        default=[],
        help="list this address as a global "
        "unsubscribe on GET /v3/suppression/unsubscribes (repeatable)",
    )
    ap.add_argument(
        "--scope",
        action="append",
        default=None,
        help="a scope GET /v3/scopes lists (repeatable; default: what sending needs)",
    )
    ap.add_argument(
        "--verified-sender", action="append", default=[], help="a verified single sender"
    )
    ap.add_argument(
        "--authenticated-domain", action="append", default=[], help="an authenticated domain"
    )
    args = ap.parse_args(argv)
    plan = FaultPlan(
        script=[s for s in args.script.split(",") if s],
        fail_rate=args.fail_rate,
        kinds=[k for k in args.kinds.split(",") if k],
        seed=args.seed,
        latency=args.latency,
        slow_seconds=args.slow_seconds,
        reset_seconds=args.reset_seconds,
        reset_unit=args.reset_unit,
        list_faults=[f for f in args.list_faults.split(",") if f],
    )
    recorder = Recorder(args.db, keep_messages=not args.no_messages)
    sock = free_socket() if args.port == 0 else socket.create_server(("127.0.0.1", args.port))
    account = Account(
        scopes=tuple(args.scope) if args.scope is not None else SENDING_SCOPES,
        verified_senders=tuple(args.verified_sender),
        authenticated_domains=tuple(args.authenticated_domain),
    )
    app = create_app(
        plan, recorder, suppressions={"unsubscribes": args.unsubscribed}, account=account
    )
    config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_keep_alive=30)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    recorder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
