"""A small keep-alive HTTP/1.1 load generator on raw asyncio streams, run in a process of its own.

The client costs little CPU next to the server on a 2-core machine. ``conns`` connections each
take the next request in order; with a ``rate`` (requests/s), request i is due at
``start + i / rate`` and its latency counts from then (an open loop: a slow server cannot slow
the clock down); without one, from the moment it is written.

:func:`load` runs it (``python -m bench.loadgen REQUESTS PORT CONNS RATE`` in a child process,
the requests pickled in a file) and returns ``n``, ``seconds``, ``status`` (count by code) and
the ``p50``, ``p99`` and ``max`` latencies in ms.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(port: int, requests: Sequence[bytes], conns: int, rate: float = 0) -> dict[str, object]:
    """Send ``requests`` (whole HTTP/1.1 requests) to 127.0.0.1:``port`` from a child process."""
    with tempfile.NamedTemporaryFile(suffix=".pickle") as f:
        pickle.dump(list(requests), f)
        f.flush()
        out = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", f.name, str(port), str(conns), str(rate)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
            cwd=ROOT,
        )
    return dict(json.loads(out.stdout))


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one whole response (with a Content-Length); its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return int(head.split(b" ")[1])


async def _run(
    port: int, requests: list[bytes], conns: int, rate: float
) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    status: dict[int, int] = {}
    following = iter(enumerate(requests))
    start = time.perf_counter() + (0.05 if rate else 0)  # paced: time for every connection

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i, request in following:
            due = start + i / rate if rate else time.perf_counter()
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(request)
            code = await _answer(reader)
            latencies.append((time.perf_counter() - due) * 1000)
            status[code] = status.get(code, 0) + 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return time.perf_counter() - start, latencies, status


def main(argv: list[str]) -> None:
    with open(argv[0], "rb") as f:
        requests = pickle.load(f)
    port, conns, rate = int(argv[1]), int(argv[2]), float(argv[3])
    seconds, lat, status = asyncio.run(_run(port, requests, conns, rate))
    lat.sort()
    summary = {"n": len(lat), "seconds": seconds, "status": status}
    summary |= {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "max": lat[-1]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
