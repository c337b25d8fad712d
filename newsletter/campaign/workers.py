"""``send --workers N``: more sender processes for one campaign on a PostgreSQL store.

The first process prepares the campaign and shares its lease; each extra process is a plain
``resume`` of the same campaign in a fresh interpreter (``spawn``: no threads or connections
inherited), so it takes its own shared lease and claims batches like a sender on another host
would. Secrets travel as arguments, never through files or the command line.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from newsletter.config import Secrets, Settings

SenderMain = Callable[[Settings, Secrets, str, Any], None]


def spawn_senders(
    n: int,
    sender_main: SenderMain,
    settings: Settings,
    secrets: Secrets,
    campaign_id: str,
    options: object,
) -> list[BaseProcess]:
    """Start ``n`` processes running ``sender_main(settings, secrets, campaign_id, options)``
    (a module-level function: ``spawn`` imports it by name) for a prepared, shared campaign."""
    ctx = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = []
    for i in range(n):
        proc = ctx.Process(
            target=sender_main,
            args=(settings, secrets, campaign_id, options),
            name=f"newsletter-sender-{i + 2}",
            daemon=False,
        )
        proc.start()
        procs.append(proc)
    return procs


def wait_senders(procs: Sequence[BaseProcess]) -> list[str]:
    """Wait for every sender process; a line for each one that did not finish cleanly."""
    notes: list[str] = []
    for proc in procs:
        proc.join()
        if proc.exitcode not in (0, None):
            notes.append(
                f"sender process {proc.pid} stopped with exit code {proc.exitcode}; the "
                "batches it had in flight are unknown (see `newsletter status`)"
            )
    return notes
