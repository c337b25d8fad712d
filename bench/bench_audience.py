"""Audience benchmarks: CSV import, unsubscribe tokens, and the one-click endpoint under load.

    .venv/bin/python -m bench audience            # 100k + 1M row imports, tokens, endpoint
    .venv/bin/python -m bench audience --quick    # 100k import only, shorter load test

Goals (issue #4): 1,000,000 rows in < 60 s with peak RSS < 200 MB; >= 500 one-click POST/s
with p99 < 50 ms and no request lost. Every figure comes with a baseline measured in the same
run: the import against a bare ``csv.reader`` pass over the same file (and the RSS of a process
that only imported the modules), tokens against one bare HMAC-SHA256, the one-click POST against
``GET /healthz`` on the same server with the same load generator. Then ``GET /healthz`` again
while two helper processes hold 20,000 connections that never send a request (issue 10): the
server runs as ``newsletter serve`` does (:func:`newsletter.web.app.run_server`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.loadgen import load

QUICK = "--quick" in sys.argv or bool(os.environ.get("BENCH_QUICK"))
ROOT = Path(__file__).resolve().parent.parent

IMPORT_SCRIPT = textwrap.dedent(
    """
    import csv, json, resource, sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    from newsletter.store import open_store
    from newsletter.subscribers import import_subscribers
    csv_path, db_path, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if mode == "baseline":
        with open(csv_path, newline="", encoding="utf-8") as f:
            n = sum(1 for _ in csv.reader(f)) - 1
        out = {"rows": n}
    else:
        with open_store(db_path) as store:
            r = import_subscribers(store.audience, csv_path, now=datetime.now(UTC))
            out = {"rows": r.rows, "added": r.added, "rejected": r.rejected,
                   "duplicates": r.duplicates}
            out["seconds"] = time.perf_counter() - t
            out["import_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            t = time.perf_counter()
            n = sum(1 for _ in store.audience.iter_recipients(["t1", "t2"]))
            out["segment_rows"] = n
            out["segment_seconds"] = time.perf_counter() - t
    if mode == "baseline":
        out["seconds"] = time.perf_counter() - t
    out["base_rss_mb"] = base_rss / 1024
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
    """
)

# the server as `newsletter serve` runs it (connection guard, limits, quiet logs)
SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from newsletter.web.app import WebConfig, create_app, run_server
    db, secret, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    app = create_app(WebConfig(store_path=db, secret=secret))
    run_server(app, host="127.0.0.1", port=port)
    """
)

# Holds N connections to 127.0.0.1:PORT that never send a request (every 4th sends half a
# request head); prints how many connects were started, then waits for stdin to close (or 120 s).
HALF_OPEN_SCRIPT = textwrap.dedent(
    """
    import contextlib, resource, select, socket, sys
    port, n = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for i in range(min(n, hard - 32)):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError, OSError):
            s.connect(("127.0.0.1", port))
        if i % 4 == 3:
            with contextlib.suppress(OSError):
                s.send(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n")
        socks.append(s)
    print(len(socks), flush=True)
    select.select([sys.stdin], [], [], 120)
    for s in socks:
        s.close()
    """
)


def _py(script: str, *args: str, timeout: float = 600) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _generate(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("email,first_name,last_name,tags,subscribed_at,city\n")
        for i in range(rows):
            f.write(
                f"User.{i}@Example{i % 97}.org,First{i},Last{i},news;t{i % 5},"
                f"2024-0{1 + i % 9}-1{i % 10},City{i % 300}\n"
            )


def bench_import(tmp: Path, rows: int) -> None:
    csv_path = tmp / f"people-{rows}.csv"
    _generate(csv_path, rows)
    base = _py(IMPORT_SCRIPT, str(csv_path), str(tmp / "unused.db"), "baseline")
    got = _py(IMPORT_SCRIPT, str(csv_path), str(tmp / f"import-{rows}.db"), "import")
    secs = float(got["seconds"])  # type: ignore[arg-type]
    print(
        f"import {rows:>9,} rows: {secs:6.1f} s  {rows / secs:9,.0f} rows/s  "
        f"peak RSS {got['peak_rss_mb']:.0f} MB (process after imports: {got['base_rss_mb']:.0f} MB)"
        f"  added={got['added']} rejected={got['rejected']}"
    )
    seg = float(got["segment_seconds"])  # type: ignore[arg-type]
    print(
        f"  then iter_recipients(segments t1|t2): {got['segment_rows']:,} rows in {seg:.1f} s "
        f"({float(got['segment_rows']) / seg:,.0f} rows/s; peak RSS after import "  # type: ignore[arg-type]
        f"{got['import_rss_mb']:.0f} MB, after iterating {got['peak_rss_mb']:.0f} MB)"
    )
    bsecs = float(base["seconds"])  # type: ignore[arg-type]
    print(
        f"  baseline csv.reader pass: {bsecs:6.2f} s  {rows / bsecs:9,.0f} rows/s  "
        f"peak RSS {base['peak_rss_mb']:.0f} MB"
    )
    csv_path.unlink()


def bench_tokens() -> None:
    from newsletter.unsubscribe import make_token, verify_token

    secret = "bench-secret-0123456789abcdef"
    n = 20_000 if QUICK else 100_000
    t = time.perf_counter()
    for i in range(1, n + 1):
        verify_token(secret, make_token(secret, i, f"user{i}@example.org"))
    secs = time.perf_counter() - t
    key = secret.encode()
    t = time.perf_counter()
    for i in range(n):
        hmac.new(key, str(i).encode(), hashlib.sha256).digest()
    base = time.perf_counter() - t
    print(f"tokens: make+verify {n / secs:,.0f}/s ({secs / n * 1e6:.1f} us per pair)")
    print(f"  baseline one HMAC-SHA256: {n / base:,.0f}/s ({base / n * 1e6:.1f} us)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_endpoint(tmp: Path) -> None:
    from datetime import UTC, datetime

    from newsletter.store import open_store
    from newsletter.subscribers import import_subscribers
    from newsletter.unsubscribe import make_token

    n = 3000 if QUICK else 10_000
    conns = 16
    secret = "bench-secret-0123456789abcdef"
    csv_path = tmp / "endpoint.csv"
    _generate(csv_path, n)
    db = tmp / "endpoint.db"
    with open_store(db) as store:
        import_subscribers(store.audience, csv_path, now=datetime.now(UTC))
        paths = [
            f"/u/{make_token(secret, s.id, s.email)}" for s in store.audience.iter_recipients()
        ]
    body = b"List-Unsubscribe=One-Click"
    post_head = "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    one_click = [
        (post_head.format(p) + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for p in paths
    ]
    healthz = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] * n
    port = _free_port()
    log = tmp / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(db), secret, str(port)],
        cwd=ROOT,
        stderr=log.open("wb"),
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for label, requests in (
            ("baseline GET /healthz", healthz),
            ("one-click POST /u/TOKEN", one_click),
        ):
            r = load(port, requests, conns)
            rate = float(r["n"]) / float(r["seconds"])  # type: ignore[arg-type]
            print(
                f"{label:<26} {r['n']:>6} requests, {conns} connections: {rate:7,.0f} req/s  "
                f"p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms  "
                f"status {r['status']}"
            )
        _during_half_open(healthz, port, server.pid, conns, log)
    finally:
        server.terminate()
        server.wait(10)
    with open_store(db) as store:
        count = store.audience.count_suppressions()
        sources = {s.source for s in store.audience.iter_suppressions()}
    lost = n - count
    print(f"  suppressions after the load: {count} of {n} POSTs ({lost} lost), sources {sources}")


def _during_half_open(healthz: list[bytes], port: int, pid: int, conns: int, log: Path) -> None:
    """GET /healthz while 20,000 connections that never send a request are held open.

    Two holder processes of 10,000 each, since one process may not have 20,000 files."""
    want = 20_000
    before = log.stat().st_size
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", HALF_OPEN_SCRIPT, str(port), str(want // 2)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        held = sum(int(h.stdout.readline() or 0) for h in holders if h.stdout is not None)
        r = load(port, healthz, conns)
        rate = float(r["n"]) / float(r["seconds"])  # type: ignore[arg-type]
        fds = len(os.listdir(f"/proc/{pid}/fd")) if Path(f"/proc/{pid}/fd").exists() else -1
        print(
            f"{'GET /healthz, ' + f'{held:,} half-open':<26} {r['n']:>6} requests, {conns} "
            f"connections: {rate:7,.0f} req/s  p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  "
            f"max {r['max']:.1f} ms  status {r['status']}"
        )
        print(
            f"  server open files during the flood: {fds:,}; server log grew "
            f"{log.stat().st_size - before:,} bytes"
        )
    finally:
        for h in holders:
            if h.stdin is not None:
                h.stdin.close()
            h.wait(30)


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-audience-") as d:
        tmp = Path(d)
        for rows in (100_000,) if QUICK else (100_000, 1_000_000):
            bench_import(tmp, rows)
        bench_tokens()
        bench_endpoint(tmp)
