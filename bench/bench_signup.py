"""Sign-up benchmark: POST /subscribe on a real `newsletter serve` (uvicorn, 127.0.0.1).

    .venv/bin/python -m bench signup            # 3,000 sign-ups per run at 200/s, flat out
    .venv/bin/python -m bench signup --quick    # 1,000, and no thread comparison
    .venv/bin/python -m bench signup --drain    # only the queue drain (below)

Goal (issue #14): 200 sign-ups/s with p99 < 100 ms, none lost. The server is the `newsletter
serve` command itself, its mail process sending the confirmation emails: first through SendGrid
(the recording fake, in its own process, answering after 50 ms as a real API would), then to
the outbox as in the demo. Last, for comparison, the same app sending from a thread of the web
process. The load generator is a raw asyncio HTTP/1.1 client in another process, keep-alive
connections, each sign-up a new address. Paced runs are open-loop: a request's latency counts
from the moment it was due, so a server that falls behind cannot hide it. The baseline is
``GET /healthz`` on the same server, paced the same way. Afterwards, with the server still
running, the store and the emails are checked: every accepted sign-up must be a pending
subscriber with its consent record and exactly one confirmation email.

First, the queue drain on its own: a burst of sign-ups already queued (2,000; 1,000 with
--quick), sent by ``send_queued`` through the SendGrid transport to the fake (50 ms answers),
one request per reader as before (``batch_size=1`` and 20 rows per call, main's way) and then
in batches (the defaults), in the same run: confirmations per second, requests made, and a
check that each reader got exactly one message.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.loadgen import load

QUICK = "--quick" in sys.argv or bool(os.environ.get("BENCH_QUICK"))
DRAIN_ONLY = "--drain" in sys.argv
ROOT = Path(__file__).resolve().parent.parent
RATE = 200.0
CONNS = 32

TOML = """\
[site]
name = "Bench Meetup"
url = "https://bench.example.org"

[email]
from_email = "news@bench.example.org"

[unsubscribe]
base_url = "http://127.0.0.1:{port}"

[signup]
per_client_per_hour = 0   # every request comes from 127.0.0.1
per_minute = 0

[store]
path = "bench.db"
"""


def _request(kind: str, i: int) -> bytes:
    if kind == "healthz":
        return b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = f"email=reader{i}%40bench.example.net&first_name=R{i}&form=bench".encode()
    return (
        b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
        b"Origin: https://bench.example.org\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(port: int, kind: str, n: int, rate: float, first: int) -> dict[str, object]:
    """``n`` requests of ``kind`` (sign-ups numbered from ``first``), ``rate`` per second
    (0: as fast as the server answers), over ``CONNS`` keep-alive connections."""
    return load(port, [_request(kind, first + i) for i in range(n)], CONNS, rate)


def _line(label: str, r: dict[str, object]) -> str:
    rate = float(r["n"]) / float(r["seconds"])  # type: ignore[arg-type]
    return (
        f"{label:<34} {r['n']:>6} requests: {rate:6,.0f}/s  p50 {r['p50']:6.1f} ms  "
        f"p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms  status {r['status']}"
    )


# The comparison: the same app with the confirmation emails sent from a thread of the web
# process (how it was first built) instead of serve's child process.
THREAD_SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from datetime import UTC, datetime
    from pathlib import Path
    from newsletter.config import load_settings
    from newsletter.signup import Policy
    from newsletter.transports.outbox import OutboxTransport
    from newsletter.web.app import WebConfig, create_app
    from newsletter.web.signup import SignupConfig, SignupWeb
    s = load_settings(Path(sys.argv[1]))
    secret = "bench-secret-0123456789abcdef-0123456789"
    web = SignupWeb(SignupConfig(s.db_path, secret, s, Policy.from_settings(s),
                                 OutboxTransport(s.path(s.send.outbox_dir)),
                                 lambda: datetime.now(UTC)))
    app = create_app(WebConfig(store_path=s.db_path, secret=secret, signup=web))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=False,
                log_level="warning")
    """
)


def _start(
    cmd: list[str], site: Path, port: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDGRID_")}
    env["NEWSLETTER_SECRET"] = "bench-secret-0123456789abcdef-0123456789"
    env.update(extra_env or {})
    log = (site / "serve.log").open("w")
    server = subprocess.Popen(cmd, cwd=site, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError((site / "serve.log").read_text()) from None
            time.sleep(0.1)


def _warm_up(site: Path, port: int) -> None:
    """One sign-up, and wait until its email is out: the mail process has started (its
    imports and the email's rendering take a second of CPU that would land in the figures)."""
    import http.client

    from newsletter.store import open_store

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/subscribe", body="email=warm-up%40bench.example.net",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert conn.getresponse().status == 303
    conn.close()
    deadline = time.monotonic() + 60
    with open_store(site / "bench.db") as store:
        while store.signup.queued() and time.monotonic() < deadline:
            time.sleep(0.1)
    time.sleep(1.0)


def _site(root: Path, name: str) -> tuple[Path, int]:
    site = root / name
    site.mkdir()
    port = _free_port()
    (site / "newsletter.toml").write_text(TOML.format(port=port), encoding="utf-8")
    return site, port


def _check(site: Path, accepted: int, emails: Callable[[], int]) -> str:
    from newsletter.store import open_store

    with open_store(site / "bench.db") as store:
        start = time.monotonic()
        while store.signup.queued() and time.monotonic() < start + 300:
            time.sleep(0.2)
        drained = time.monotonic() - start
        stats = store.audience.stats()
        consents = store.conn.execute("SELECT count(*) FROM consents").fetchone()[0]
        queued = store.signup.queued()
    lost = accepted - stats.pending
    return (
        f"  after the load: {accepted} accepted, {stats.pending} pending subscribers, "
        f"{consents} consent records, {emails()} confirmation emails, {queued} still queued: "
        f"{lost} lost (the mail queue emptied {drained:.1f} s after the load)"
    )


def _outbox_count(site: Path) -> Callable[[], int]:
    return lambda: len(list((site / "outbox" / "signup-confirmations").glob("*.eml")))


def _fake_count(db: Path) -> Callable[[], int]:
    def count() -> int:
        with sqlite3.connect(db) as conn:
            emails = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        print(f"  the fake SendGrid got {_fake_requests(db)} requests for {emails} emails")
        return emails

    return count


def _accepted(*results: dict[str, object]) -> int:
    return sum(int(r["status"].get("303", 0)) for r in results)  # type: ignore[attr-defined]


@contextmanager
def _fake_sendgrid(db: Path) -> Iterator[str]:
    """The recording fake SendGrid in its own process, answering after 50 ms like a real API."""
    fake = subprocess.Popen(
        [sys.executable, "-m", "newsletter.fakes.sendgrid", "--db", str(db), "--latency", "0.05"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert fake.stdout is not None
        line = fake.stdout.readline()
        yield line.split()[-1].rstrip("/")
    finally:
        fake.terminate()
        fake.wait(15)


def _serve_run(
    root: Path, name: str, env: dict[str, str], emails: Callable[[Path], Callable[[], int]],
    *, full: bool,
) -> None:  # fmt: skip
    paced = 1000 if QUICK else 3000
    site, port = _site(root, name)
    cmd = [sys.executable, "-m", "newsletter", "serve", "--port", str(port)]
    server = _start(cmd, site, port, env)
    try:
        _warm_up(site, port)
        results = []
        if full:
            base = _load(port, "healthz", paced, RATE, 0)
            print(_line(f"baseline GET /healthz at {RATE:.0f}/s", base))
        r = _load(port, "subscribe", paced, RATE, 0)
        results.append(r)
        print(_line(f"POST /subscribe at {RATE:.0f}/s", r))
        p99 = float(r["p99"])  # type: ignore[arg-type]
        ratio = f"p99 {p99 / float(base['p99']):.1f}x the baseline's; " if full else ""  # type: ignore[arg-type]
        print(f"  {ratio}goal p99 < 100 ms at 200/s: {'met' if p99 < 100 else 'NOT met'}")
        if full:
            top = _load(port, "subscribe", paced, 0, paced)
            results.append(top)
            print(_line(f"POST /subscribe flat out ({CONNS} conns)", top))
        print(_check(site, _accepted(*results) + 1, emails(site)))
    finally:
        server.terminate()
        server.wait(15)


def _drain(root: Path, url: str, fake_db: Path, name: str, n: int, **how: int) -> float:
    """Queue ``n`` sign-ups in a fresh store, then send them all with ``send_queued(**how)``
    through the SendGrid transport; prints and returns confirmations per second."""
    from datetime import UTC, datetime

    from newsletter import signup
    from newsletter.config import load_settings
    from newsletter.providers.sendgrid.transport import SendGridTransport
    from newsletter.signup.mail import ConfirmationEmail, Mailer, send_queued
    from newsletter.store import open_store
    from newsletter.transports.base import Sender

    site, _ = _site(root, name)
    settings = load_settings(site / "newsletter.toml")
    policy = signup.Policy(per_client_per_hour=0, per_minute=0)
    transport = SendGridTransport("SG.bench", api_url=url, timeout=30)
    mailer = Mailer(
        transport, ConfirmationEmail.render(settings), Sender("news@bench.example.org"),
        "bench-secret-0123456789abcdef-0123456789", "https://bench.example.org",
    )  # fmt: skip
    before = _fake_requests(fake_db)
    now = datetime.now(UTC)
    with open_store(site / "bench.db") as store:
        for i in range(n):
            form = signup.clean_form({"email": f"{name}{i}@bench.example.net"}, [], policy)
            signup.submit(store, form, client_address="1", secret="s" * 32, policy=policy, now=now)
        start = time.perf_counter()
        sent = 0
        while True:
            report = send_queued(store, mailer, now=lambda: now, concurrency=4, **how)
            if not report.taken:
                break
            sent += report.sent
        seconds = time.perf_counter() - start
        left = store.signup.queued()
    transport.close()
    with sqlite3.connect(fake_db) as conn:
        mailed = conn.execute(
            "SELECT count(*), count(DISTINCT email) FROM messages WHERE email LIKE ?",
            (f"{name}%",),
        ).fetchone()
    requests = _fake_requests(fake_db) - before
    print(
        f"  {name:<26} {n} queued: {sent / seconds:7,.0f} confirmations/s  {seconds:6.2f} s  "
        f"{requests:5} requests  {mailed[0]} messages to {mailed[1]} readers, {left} left queued"
    )
    return sent / seconds


def _fake_requests(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])


def drain(root: Path) -> None:
    n = 1000 if QUICK else 2000
    print(
        "-- the confirmation queue drained by send_queued through SendGrid (the recording "
        "fake, 50 ms answers), send.concurrency 4:"
    )
    fake_db = root / "drain-fake.db"
    with _fake_sendgrid(fake_db) as url:
        one = _drain(root, url, fake_db, "per-reader", n, batch_size=1, limit=20)
        batched = _drain(root, url, fake_db, "batched", n)
    print(f"  batches: {batched / one:.1f}x the confirmations per second of one request each")


def run() -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-signup-") as d:
        root = Path(d)
        drain(root)
        if DRAIN_ONLY:
            return
        print("-- newsletter serve, confirmation emails through SendGrid (the recording fake):")
        fake_db = root / "fake.db"
        with _fake_sendgrid(fake_db) as url:
            env = {"SENDGRID_API_KEY": "SG.bench", "SENDGRID_API_URL": url}
            _serve_run(root, "sendgrid", env, lambda _site: _fake_count(fake_db), full=True)
        print("-- newsletter serve, confirmation emails to the outbox (the demo):")
        _serve_run(root, "outbox", {}, _outbox_count, full=False)
        if QUICK:
            return
        print("-- the same app, emails to the outbox from a thread of the web process:")
        site, port = _site(root, "thread")
        server = _start([sys.executable, "-c", THREAD_SERVER, "newsletter.toml", str(port)],
                        site, port)  # fmt: skip
        try:
            _warm_up(site, port)
            t = _load(port, "subscribe", 1000 if QUICK else 3000, RATE, 0)
            print(_line(f"POST /subscribe at {RATE:.0f}/s", t))
            print(_check(site, _accepted(t) + 1, _outbox_count(site)))
        finally:
            server.terminate()
            server.wait(15)
