"""Dispatch throughput: `newsletter send` to 100,000 and 1,000,000 generated subscribers.

Everything is real: the example site is rendered, subscribers are imported into a SQLite store,
and ``newsletter send --transport sendgrid`` runs as its own process against the recording fake
SendGrid (another process, 20 ms added to every answer, every message recorded). For each size
we print wall time, recipients/s, CPU seconds per 1,000 recipients and peak memory (max RSS) of
the send process, and check the fake got every recipient exactly once.

The baseline, measured in the same run against the same fake: the official library used the
plain way — sequential, one request per 1000 recipients built with its ``Mail`` helper, a new
connection per request, no ledger. It runs on 100,000 subscribers only; its 1,000,000 figure is
extrapolated linearly (printed as such).

Sizes can be overridden: ``NEWSLETTER_BENCH_SIZES=20000,100000 python -m bench dispatch``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LATENCY = 0.02
SECRET = "bench-secret-not-a-real-one-0123456789"
#: the October issue to everyone, through SendGrid (the fake), no prompt, no progress bar
SEND = (
    "send",
    "--month",
    "2026-10",
    "--now",
    "2026-11-01T09:00",
    "--transport",
    "sendgrid",
    "--yes",
    "--no-progress",
)
GOALS = "goals: 1,000,000 in < 60 s, peak memory < 250 MB, >= 3x the baseline's recipients/s"


def _run_measured(
    args: list[str], cwd: Path, env: dict[str, str]
) -> tuple[float, float, float, str]:
    """(wall s, CPU s, max RSS MB, stderr) of one child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... exited {proc.returncode}:\n{text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def example_site(base: Path, name: str) -> Path:
    """A copy of the example site (posts, templates, settings) in ``base/name``."""
    site = base / name
    site.mkdir()
    shutil.copytree(ROOT / "content", site / "content")
    if (ROOT / "templates").is_dir():
        shutil.copytree(ROOT / "templates", site / "templates")
    shutil.copy(ROOT / "newsletter.toml", site / "newsletter.toml")
    return site


def _site(base: Path, n: int) -> Path:
    site = example_site(base, f"site-{n}")
    with (site / "subs.csv").open("w", encoding="utf-8") as f:
        f.write("email,first_name\n")
        for i in range(n):
            f.write(f"reader{i}@bench{n}.example.net,Reader{i}\n")
    return site


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from newsletter.cli import main; main()", *args]


def _start_fake(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter.providers.sendgrid.fake",
            "--db",
            str(db),
            "--latency",
            str(LATENCY),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    return proc, line.rsplit(" ", 1)[-1]


@contextlib.contextmanager
def recording_fake(db: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The recording fake SendGrid in a process of its own, recording to ``db``; yields its
    URL and the environment a send to it runs with (no variable of the caller's own)."""
    fake, url = _start_fake(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "NEWSLETTER_"))}
    env.update(SENDGRID_API_KEY="SG.bench", SENDGRID_API_URL=url, NEWSLETTER_SECRET=SECRET)
    try:
        yield url, env
    finally:
        fake.terminate()
        fake.wait(timeout=30)
        if fake.stdout is not None:
            fake.stdout.close()


def _count(db: Path, domain: str) -> tuple[int, int]:
    conn = sqlite3.connect(db, timeout=60)
    try:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT email) FROM messages WHERE email LIKE ?",
            (f"%@{domain}",),
        ).fetchone()
        return int(row[0]), int(row[1])
    finally:
        conn.close()


def baseline(store_path: str, url: str) -> None:
    """The naive sender (run in its own process): official library, Mail helper, sequential."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import (
        Content,
        CustomArg,
        From,
        Header,
        Mail,
        Personalization,
        Substitution,
        To,
    )

    from newsletter.personalize import Personal, token_values
    from newsletter.store import open_store
    from newsletter.unsubscribe import list_unsubscribe_headers, make_token, unsubscribe_url

    html = (
        "<p>Hello %%FIRST_NAME%%</p>" + "<p>news</p>" * 2000 + '<a href="%%UNSUBSCRIBE_URL%%">x</a>'
    )
    text = "Hello %%FIRST_NAME_TEXT%%\n" + "news\n" * 2000 + "%%UNSUBSCRIBE_URL%%\n"
    sg = SendGridAPIClient(api_key="SG.bench", host=url)
    sg.client.timeout = 30

    def flush(people: list[tuple[int, str, str]]) -> None:
        mail = Mail(from_email=From("news@example.org", "News"), subject="Bench issue")
        mail.add_content(Content("text/plain", text))
        mail.add_content(Content("text/html", html))
        for sid, email, first in people:
            url_ = unsubscribe_url("https://example.org", make_token(SECRET, sid, email))
            p = Personalization()
            p.add_to(To(email))
            values = token_values(Personal(email, first, url_))
            for key in ("%%UNSUBSCRIBE_URL%%", "%%FIRST_NAME%%", "%%FIRST_NAME_TEXT%%"):
                p.add_substitution(Substitution(key, values[key]))
            for key, value in list_unsubscribe_headers(url_).items():
                p.add_header(Header(key, value))
            p.add_custom_arg(CustomArg("campaign_id", "baseline"))
            p.add_custom_arg(CustomArg("recipient_id", str(sid)))
            mail.add_personalization(p)
        sg.send(mail)

    with open_store(store_path) as store:
        chunk: list[tuple[int, str, str]] = []
        for sub in store.audience.iter_recipients(()):
            chunk.append((sub.id, sub.email, sub.first_name))
            if len(chunk) == 1000:
                flush(chunk)
                chunk = []
        if chunk:
            flush(chunk)


def _connections(url: str, requests: int = 100) -> None:
    """The transport alone: the same 1000-recipient batch, 4 threads, keep-alive or not."""
    from concurrent.futures import ThreadPoolExecutor

    from newsletter.providers.sendgrid.transport import SendGridTransport
    from newsletter.rendered import RenderedIssue
    from newsletter.transports.base import Batch, Recipient, Sender

    issue = RenderedIssue(
        subject="Bench", preheader="", html="<p>%%FIRST_NAME%%</p>" * 500, text="x", layout="digest"
    )
    people = [
        Recipient(f"conn{i}@example.net", "", {"%%FIRST_NAME%%": f"N{i}"}, {}, {"i": str(i)})
        for i in range(1000)
    ]
    batch = Batch("bench-conn", 0, issue, Sender("news@example.org"), people)
    print(f"\ntransport only: {requests} requests of 1000 recipients, 4 threads")
    for keep_alive in (False, True):
        t = SendGridTransport("SG.bench", api_url=url, keep_alive=keep_alive)
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(t.send, [batch] * requests))
        wall = time.perf_counter() - start
        t.close()
        mode = "one keep-alive connection per thread" if keep_alive else "new connection per call"
        print(f"  {mode:38} {wall:6.2f} s  {requests * 1000 / wall:>9,.0f} recipients/s")


def run() -> None:
    sizes = [int(s) for s in os.environ.get("NEWSLETTER_BENCH_SIZES", "100000,1000000").split(",")]
    base_size = min(sizes[0], 100_000)
    with (
        tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp,
        recording_fake(Path(tmp) / "fake.db") as (url, env),
    ):
        work = Path(tmp)
        fake_db = work / "fake.db"
        print(f"recording fake SendGrid at {url}, {LATENCY * 1000:.0f} ms added per request")
        rows: list[tuple[str, int, float, float, float]] = []
        for n in sizes:
            site = _site(work, n)
            t0 = time.perf_counter()
            _run_measured(_cli("subscribers", "import", "subs.csv"), site, env)
            took = time.perf_counter() - t0
            print(f"{n:>9,} subscribers generated and imported in {took:.1f} s (not counted)")
            wall, cpu, rss, _ = _run_measured(_cli(*SEND), site, env)
            total, distinct = _count(fake_db, f"bench{n}.example.net")
            ok = "ok" if total == distinct == n else f"MISMATCH {total}/{distinct}"
            rows.append((f"newsletter send ({ok})", n, wall, cpu, rss))
            if n == base_size:
                args = [
                    sys.executable,
                    "-c",
                    "import sys; from bench.bench_dispatch import baseline; "
                    "baseline(sys.argv[1], sys.argv[2])",
                    str(site / "newsletter.db"),
                    url,
                ]
                env_b = dict(env, PYTHONPATH=str(ROOT))
                bwall, bcpu, brss, _ = _run_measured(args, ROOT, env_b)
                rows.append(("baseline (Mail helper, sequential)", n, bwall, bcpu, brss))
            shutil.rmtree(site)
        _connections(url)
    print(
        f"\n{'':38} {'recipients':>10} {'wall s':>8} {'rcpt/s':>9} {'CPU s/1k':>9} {'peak MB':>8}"
    )
    for name, n, wall, cpu, rss in rows:
        print(
            f"{name:38} {n:>10,} {wall:>8.1f} {n / wall:>9,.0f} {cpu / n * 1000:>9.3f} {rss:>8.0f}"
        )
    base = next((r for r in rows if r[0].startswith("baseline")), None)
    if base is not None:
        per_s = base[1] / base[2]
        print(
            f"{'baseline, extrapolated':38} {1_000_000:>10,} {1_000_000 / per_s:>8.1f} "
            f"{per_s:>9,.0f} {'':>9} {'':>8}  (linear from {base[1]:,})"
        )
        ours = [r for r in rows if not r[0].startswith("baseline")]
        for _name, n, wall, _, _ in ours:
            print(f"speed-up at {n:,}: {n / wall / per_s:.1f}x the baseline's recipients/s")
    print(GOALS)
