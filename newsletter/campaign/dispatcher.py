"""A campaign: write the ledger, then send its batches exactly once, surviving crashes.

The delivery guarantee, stated plainly: every recipient is written to the ledger as ``pending``
before any request. A batch is marked ``sending`` (committed) before its request and
``accepted`` only after SendGrid's 202. So after a crash, at any instant:

- a batch marked ``accepted`` is never sent again;
- a batch still ``pending`` or ``failed`` was never accepted and is sent on resume;
- a batch found ``sending`` was in flight: SendGrid has no idempotency key, so it becomes
  ``unknown`` and is resent only on the user's word (``resume --retry-unknown``).

The dispatcher owns retries (429 honouring the provider's reset time, 5xx and refused
connections with exponential backoff and jitter), pacing and the consecutive-failure brake;
transports only translate. Only the main thread touches the store; worker threads only call
``transport.send``.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsletter.errors import (
    DeliveryUnknown,
    ProviderRejected,
    RateLimited,
    StoreError,
    TransportError,
)
from newsletter.personalize import values_for
from newsletter.rendered import RenderedIssue
from newsletter.store import campaigns as cs
from newsletter.store.audience import RecipientQuery
from newsletter.store.campaigns import CampaignStore, LedgerRow
from newsletter.store.keys import email_key
from newsletter.transports.base import (
    Batch,
    BatchResult,
    Recipient,
    Sender,
    Status,
    Transport,
)
from newsletter.transports.isolating import send_isolating
from newsletter.transports.pacing import Backoff, Pacer, Wait

_STOP_POLL = 0.25  # seconds
SUPPRESSED = "suppressed since the campaign was prepared (unsubscribed, bounced or blocked)"
SETTLED = (cs.ACCEPTED, cs.REJECTED, cs.FAILED, cs.UNKNOWN, cs.SKIPPED)


@dataclass(frozen=True)
class Personalizer:
    """Turns one ledger row into a transport Recipient (tokens, headers, custom_args)."""

    campaign_id: str
    unsubscribe_url: Callable[[str, str], str]  # (recipient_id, email) -> URL
    list_headers: Callable[[str], Mapping[str, str]]  # URL -> List-Unsubscribe headers
    first_name_fallback: str = "there"

    def __call__(self, row: LedgerRow) -> Recipient:
        recipient_id, email, first_name = row
        url = self.unsubscribe_url(recipient_id, email)
        return Recipient(
            email,
            "",
            values_for(email, first_name, url, self.first_name_fallback),
            self.list_headers(url),
            {"campaign_id": self.campaign_id, "recipient_id": recipient_id},
        )


@dataclass(frozen=True)
class Envelope:
    """What every batch of a campaign shares."""

    issue: RenderedIssue
    sender: Sender
    categories: tuple[str, ...] = ()
    asm_group_id: int = 0
    send_at: int = 0
    batch_id: str = ""
    sandbox: bool = False
    subject_prefix: str = ""

    def batch(self, campaign_id: str, batch_no: int, recipients: Sequence[Recipient]) -> Batch:
        """One request's worth of this campaign: the shared parts plus ``recipients``."""
        return Batch(
            campaign_id=campaign_id,
            batch_no=batch_no,
            issue=self.issue,
            sender=self.sender,
            recipients=recipients,
            categories=self.categories,
            asm_group_id=self.asm_group_id,
            send_at=self.send_at,
            batch_id=self.batch_id,
            sandbox=self.sandbox,
            subject_prefix=self.subject_prefix,
        )

    def to_json(self) -> str:
        issue = self.issue
        data = {
            "issue": {f.name: getattr(issue, f.name) for f in dataclasses.fields(issue) if f.init},
            "sender": dataclasses.asdict(self.sender),
            "categories": list(self.categories),
            "asm_group_id": self.asm_group_id,
            "send_at": self.send_at,
            "batch_id": self.batch_id,
            "sandbox": self.sandbox,
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Envelope:
        try:
            data = json.loads(text)
            raw = data["issue"]
            for key in ("post_paths", "warnings"):
                raw[key] = tuple(raw.get(key, ()))
            return cls(
                issue=RenderedIssue(**raw),
                sender=Sender(**data["sender"]),
                categories=tuple(data.get("categories", ())),
                asm_group_id=int(data.get("asm_group_id", 0)),
                send_at=int(data.get("send_at", 0)),
                batch_id=str(data.get("batch_id", "")),
                sandbox=bool(data.get("sandbox", False)),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(f"the stored campaign cannot be read back ({err})") from err


@dataclass(frozen=True)
class Sharing:
    """This dispatcher is one of several senders of one campaign (a PostgreSQL store).

    Batches are not listed at the start but claimed one at a time as a request slot frees
    (``CampaignStore.claim``), so senders in other processes or on other hosts take the others.
    """

    token: str  # this sender's lease token: the batches it claims carry it
    live_senders: Callable[[], set[str]]  # prunes dead senders' leases; the live tokens


@dataclass(frozen=True)
class Options:
    concurrency: int = 4
    max_retries: int = 5
    max_consecutive_failures: int = 5
    batch_size: int = 1000


@dataclass
class Summary:
    campaign_id: str
    state: str  # done | paused
    counts: dict[str, int]
    total: int
    accepted_now: int = 0
    requests: int = 0
    retries: int = 0
    elapsed: float = 0.0
    note: str = ""
    errors: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.state == cs.DONE


def prepare(
    store: CampaignStore,
    campaign_id: str,
    envelope: Envelope,
    recipients: Iterable[tuple[str, str, str]] | RecipientQuery,
    *,
    segment: str,
    transport: str,
    now: datetime,
    batch_size: int = 1000,
    kind: str = cs.DIGEST,
    window: tuple[str, str] = ("", ""),
    rehearsal: bool = False,
    carried: Sequence[cs.CarriedPost] = (),
) -> int:
    """Write every ``(recipient_id, email, first_name)`` to the ledger as pending; return count.

    ``recipients`` is rows, or a query over the store's subscribers (copied inside SQLite).

    Call with the campaign lock held. If this is interrupted, the campaign stays ``preparing``
    and the next call starts the preparation over (nothing was sent yet).
    """
    if not 1 <= batch_size <= 1000:
        raise StoreError(f"batch size {batch_size} must be between 1 and 1000")
    issue = envelope.issue
    store.begin(
        campaign_id,
        now=now,
        subject=issue.subject,
        layout=issue.layout,
        segment=segment,
        transport=transport,
        content_hash=issue.content_hash,
        newest_post_date=issue.newest_post_date,
        posts=issue.post_paths,
        batch_size=batch_size,
        envelope=envelope.to_json(),
        kind=kind,
        window=window,
        rehearsal=rehearsal,
        carried=carried,
    )
    if isinstance(recipients, RecipientQuery):
        store.add_audience(campaign_id, recipients, batch_size=batch_size)
    else:
        store.add_recipients(campaign_id, recipients, batch_size=batch_size)
    return store.ready(campaign_id, now=now)


ProgressFn = Callable[[int, int], None]  # (settled recipients, total)


class Dispatcher:
    """Sends a prepared campaign's pending batches. Call with the campaign lock held."""

    def __init__(
        self,
        store: CampaignStore,
        transport: Transport,
        envelope: Envelope,
        personalize: Callable[[LedgerRow], Recipient],
        *,
        options: Options = Options(),
        pacer: Pacer | None = None,
        backoff: Backoff | None = None,
        now: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        suppressed: Callable[[Sequence[str]], set[str]] | None = None,
        on_progress: ProgressFn | None = None,
        stop: threading.Event | None = None,
        sharing: Sharing | None = None,
    ) -> None:
        self.sharing = sharing
        self.store = store
        self.transport = transport
        self.envelope = envelope
        self.personalize = personalize
        self.options = options
        self.pacer = pacer or Pacer(clock=monotonic, sleep=sleep)
        self.backoff = backoff or Backoff()
        self.now = now
        self.monotonic = monotonic
        self.sleep = sleep
        self.suppressed = suppressed
        self.on_progress = on_progress
        # the wait the send is in (429 or a retry backoff), for a progress line to show
        self.waiting: Wait | None = None
        self.on_wait: Callable[[Wait], None] | None = None
        # set (e.g. by a SIGINT handler) to stop submitting and pause once in-flight requests
        # are answered; a flag rather than an exception, which could strike inside a lock
        self.stop = stop or threading.Event()
        self.stop_reason = "Ctrl-C"  # what set `stop`, for the pause note

    # -- the loop --------------------------------------------------------------------------

    def run(self, campaign_id: str, *, retry_unknown: bool = False) -> Summary:
        store = self.store
        campaign = store.get(campaign_id)
        if campaign is None or campaign.state == cs.PREPARING:
            raise StoreError(f"campaign {campaign_id} is not prepared; run `newsletter send`")
        start = self.monotonic()
        sharing = self.sharing
        if sharing is None:
            store.recover_in_flight(campaign_id, now=self.now())
        else:  # only the batches of senders that died; the live ones are still sending theirs
            sharing.live_senders()
            store.recover_orphans(campaign_id, now=self.now())
        requeue = [cs.FAILED, cs.UNKNOWN] if retry_unknown else [cs.FAILED]
        store.requeue(campaign_id, requeue, now=self.now())
        store.set_state(campaign_id, cs.RUNNING, now=self.now())

        infos = {b.batch_no: b for b in store.batches(campaign_id)}
        queue = deque(sorted(n for n, b in infos.items() if b.state == cs.PENDING))
        claimed: set[int] = set()  # batches this sender claimed and has not settled
        more = sharing is not None  # shared: more batches may be claimed from the store
        if sharing is not None:
            queue.clear()
        self._settled = sum(b.size for b in infos.values() if b.state in SETTLED)
        self._total = campaign.total
        self._progress()
        retries: list[tuple[float, int]] = []  # (due, batch_no)
        tries: dict[int, int] = {}
        in_flight: dict[Future[BatchResult], tuple[int, int]] = {}
        self._stats = {"accepted": 0, "requests": 0, "retries": 0}
        self._consecutive = 0
        self._last_error = ""
        pause_note = ""

        pool = ThreadPoolExecutor(max_workers=max(1, self.options.concurrency))
        try:
            while True:
                try:
                    if self.stop.is_set() and not pause_note:
                        pause_note = f"interrupted ({self.stop_reason})"
                    if not pause_note:
                        now_m = self.monotonic()
                        due = []
                        while retries and retries[0][0] <= now_m:
                            due.append(heapq.heappop(retries)[1])
                        claimed.difference_update(due)  # back to pending while they waited
                        queue.extendleft(reversed(due))
                        while len(in_flight) < self.options.concurrency and (queue or more):
                            if sharing is not None:
                                if not queue:
                                    got = store.claim(campaign_id, sharing.token, now=self.now())
                                    if got is None:
                                        more = False
                                        break
                                    queue.append(got)
                                    claimed.add(got)
                                elif queue[0] not in claimed:  # a retry: take it back
                                    got = store.claim(
                                        campaign_id,
                                        sharing.token,
                                        now=self.now(),
                                        batch_no=queue[0],
                                    )
                                    if got is None:  # another sender took it meanwhile
                                        queue.popleft()
                                        continue
                                    claimed.add(got)
                            batch_no = queue[0]
                            size = infos[batch_no].size
                            if self.pacer.wait_time(size) > 0:
                                if in_flight:
                                    break
                                # nothing in flight: wait here, noticing a Ctrl-C within
                                # _STOP_POLL seconds even when the pacing wait is an hour
                                self._pacing_wait(self.pacer.wait_time(size))
                                if not self.pacer.wait_for(size, self.stop, _STOP_POLL):
                                    break
                            queue.popleft()
                            submitted = self._submit(pool, campaign_id, batch_no, tries)
                            if submitted is not None:
                                in_flight[submitted[0]] = (batch_no, submitted[1])
                    if not in_flight:
                        if pause_note or (not queue and not retries and not more):
                            break
                        if not queue and retries:
                            # short steps: a Ctrl-C during a long 429 wait stops promptly
                            self.sleep(min(_STOP_POLL, max(0.0, retries[0][0] - self.monotonic())))
                        continue
                    timeout = None
                    if retries and not pause_note:
                        timeout = max(0.0, retries[0][0] - self.monotonic())
                    if queue and not pause_note and len(in_flight) < self.options.concurrency:
                        # a free slot held back by pacing: wake when the pacer allows. With
                        # every slot busy only an answer can free one; waking on the pacer's
                        # "0 s" then would spin and starve the request threads of the GIL.
                        pace = self.pacer.wait_time(infos[queue[0]].size)
                        timeout = pace if timeout is None else min(timeout, pace)
                    if not pause_note:  # wake up now and then to notice `stop`
                        timeout = _STOP_POLL if timeout is None else min(timeout, _STOP_POLL)
                    done, _ = wait(list(in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
                    for fut in done:
                        batch_no, size = in_flight.pop(fut)
                        note = self._settle(campaign_id, batch_no, size, fut, tries, retries)
                        if note and not pause_note:
                            pause_note = note
                except KeyboardInterrupt:
                    # stop submitting; the loop waits for the requests in flight and records
                    # their answers (a second Ctrl-C leaves them `sending` -> unknown)
                    pause_note = "interrupted (Ctrl-C)"
        finally:
            pool.shutdown(wait=True)
            if sharing is not None:
                # claimed but never sent (a pause): back to pending for the other senders
                store.unclaim(campaign_id, sharing.token, [b for b in queue if b in claimed])

        status = None
        if sharing is not None:
            others = sharing.live_senders() - {sharing.token}
            store.recover_orphans(campaign_id, now=self.now())
            status = store.status(campaign_id)
            assert status is not None
            busy = status.counts.get(cs.SENDING, 0) + status.counts.get(cs.PENDING, 0)
            if others and busy:
                # the others are still sending: the last one to finish closes the campaign
                return Summary(
                    campaign_id=campaign_id,
                    state=cs.RUNNING,
                    counts=status.counts,
                    total=campaign.total,
                    accepted_now=self._stats["accepted"],
                    requests=self._stats["requests"],
                    retries=self._stats["retries"],
                    elapsed=self.monotonic() - start,
                    note=f"{len(others)} other sender(s) are finishing the campaign",
                    errors=status.errors,
                )
        if status is None:  # a shared send counted just above (one pass over the ledger)
            status = store.status(campaign_id)
        assert status is not None
        counts = status.counts
        remaining = counts.get(cs.PENDING, 0) + counts.get(cs.FAILED, 0)  # resume sends these
        if pause_note and remaining:  # a Ctrl-C after the last answer is simply done
            note = _pause_message(campaign_id, pause_note)
            store.set_state(campaign_id, cs.PAUSED, now=self.now(), note=note)
            state = cs.PAUSED
        elif counts.get(cs.PENDING, 0):
            note = "some recipients are still pending; run `newsletter resume " + campaign_id + "`"
            store.set_state(campaign_id, cs.PAUSED, now=self.now(), note=note)
            state = cs.PAUSED
        else:
            note = ""
            unknown = counts.get(cs.UNKNOWN, 0)
            if unknown:
                note = (
                    f"{unknown} recipients are unknown (the provider's answer was lost; they may "
                    f"have the email). Check SendGrid's activity, then if needed run "
                    f"`newsletter resume {campaign_id} --retry-unknown`"
                )
            store.set_state(campaign_id, cs.DONE, now=self.now(), note=note)
            state = cs.DONE
        return Summary(
            campaign_id=campaign_id,
            state=state,
            counts=counts,
            total=campaign.total,
            accepted_now=self._stats["accepted"],
            requests=self._stats["requests"],
            retries=self._stats["retries"],
            elapsed=self.monotonic() - start,
            note=note,
            errors=status.errors,
        )

    # -- steps -----------------------------------------------------------------------------

    def _submit(
        self, pool: ThreadPoolExecutor, campaign_id: str, batch_no: int, tries: dict[int, int]
    ) -> tuple[Future[BatchResult], int] | None:
        rows = self.store.batch_rows(campaign_id, batch_no)
        if self.suppressed is not None and rows:
            # one query per batch, just before its request: someone who unsubscribes while
            # the campaign runs is not sent the rest of it
            keys = self.suppressed([r.email for r in rows])
            if keys:
                gone = [r for r in rows if email_key(r.email) in keys]
                if gone:
                    self.store.skip(campaign_id, [r.recipient_id for r in gone], SUPPRESSED)
                    rows = [r for r in rows if email_key(r.email) not in keys]
                    self._settled += len(gone)
        if not rows:
            self.store.mark(campaign_id, batch_no, cs.SKIPPED, now=self.now())
            self._progress()
            return None
        self.pacer.acquire(len(rows))
        env = self.envelope
        batch = env.batch(campaign_id, batch_no, [self.personalize(r) for r in rows])
        tries[batch_no] = tries.get(batch_no, 0) + 1
        self.store.mark(campaign_id, batch_no, cs.SENDING, now=self.now(), count_attempt=True)
        self._stats["requests"] += 1
        return pool.submit(send_isolating, self.transport, batch), len(rows)

    def _settle(
        self,
        campaign_id: str,
        batch_no: int,
        size: int,
        fut: Future[BatchResult],
        tries: dict[int, int],
        retries: list[tuple[float, int]],
    ) -> str:
        """Record one answer. Returns a pause reason, or ""."""
        attempt = tries[batch_no]
        now = self.now()
        try:
            result = fut.result()
        except RateLimited as err:
            return self._retry(campaign_id, batch_no, size, err, attempt, retries, err.retry_after)
        except ProviderRejected as err:
            if err.status in (401, 403):
                self.store.mark(campaign_id, batch_no, cs.PENDING, now=now, error=err.format())
                return f"the provider refused our credentials: {err.format()}"
            self.store.mark(campaign_id, batch_no, cs.REJECTED, now=now, error=err.format())
            self._settled += size
            return self._failure(err)
        except DeliveryUnknown as err:
            self.store.mark(campaign_id, batch_no, cs.UNKNOWN, now=now, error=err.format())
            self._settled += size
            return self._failure(err)
        except TransportError as err:  # ProviderUnavailable and any other transport failure
            return self._retry(campaign_id, batch_no, size, err, attempt, retries, None)
        rejected = [(o.email, o.reason) for o in result.outcomes if o.status is Status.REJECTED]
        self.store.mark(
            campaign_id,
            batch_no,
            cs.ACCEPTED,
            now=now,
            message_id=result.provider_message_id,
            rejected=rejected,
        )
        self._consecutive = 0
        self._settled += size
        self._stats["accepted"] += size - len(rejected)
        self._progress()
        return ""

    def _retry(
        self,
        campaign_id: str,
        batch_no: int,
        size: int,
        err: TransportError,
        attempt: int,
        retries: list[tuple[float, int]],
        retry_after: float | None,
    ) -> str:
        now = self.now()
        if attempt > self.options.max_retries:
            self.store.mark(campaign_id, batch_no, cs.FAILED, now=now, error=err.format())
            self._settled += size
            self._progress()
            return self._failure(err)
        # known not accepted: back to pending, so a crash while waiting resends it on resume
        self.store.mark(campaign_id, batch_no, cs.PENDING, now=now, error=err.format())
        delay = self.backoff.delay(attempt - 1, retry_after)
        due = self.monotonic() + delay
        self._wait_started(err, batch_no, delay, retry_after)
        if retry_after is not None:
            self.pacer.hold_until(due)
        heapq.heappush(retries, (due, batch_no))
        self._stats["retries"] += 1
        if isinstance(err, RateLimited):
            # a 429 waited out is the provider pacing us, not a failure: it must not trip the
            # consecutive-failure brake (max_retries above still bounds each batch)
            self._progress()
            return ""
        return self._failure(err)

    def _wait_started(
        self, err: TransportError, batch_no: int, delay: float, asked: float | None
    ) -> None:
        if isinstance(err, RateLimited):
            reason = f"the rate limit of {self.transport.name} (HTTP 429)"
        else:
            reason = f"a retry of batch {batch_no} after: {err.format()}"
        self._announce(Wait(reason, self.now() + timedelta(seconds=delay), delay, asked))

    def _pacing_wait(self, seconds: float) -> None:
        until = self.now() + timedelta(seconds=seconds)
        if self.waiting is not None and self.waiting.until >= until - timedelta(seconds=1):
            return  # the hold of a 429, already announced
        self._announce(Wait("the sending limit (max per second / per hour)", until, seconds))

    def _announce(self, wait: Wait) -> None:
        previous, self.waiting = self.waiting, wait
        if (
            previous is not None
            and previous.reason == wait.reason
            and abs((wait.until - previous.until).total_seconds()) < 1
        ):
            return  # the same wait seen by several requests in flight: said once
        if self.on_wait is not None:
            self.on_wait(wait)

    def _failure(self, err: TransportError) -> str:
        self._consecutive += 1
        self._last_error = err.format()
        self._progress()
        if self._consecutive >= self.options.max_consecutive_failures:
            return f"{self._consecutive} failures in a row (last: {self._last_error})"
        return ""

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self._settled, self._total)


def _pause_message(campaign_id: str, why: str) -> str:
    return (
        f"paused: {why}. Progress is saved; fix the cause, then run "
        f"`newsletter resume {campaign_id}` to send to the remaining recipients"
    )
