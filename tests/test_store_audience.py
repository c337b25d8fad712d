"""The audience store on a real SQLite file and a real PostgreSQL database: recipients, segments,
suppressions, concurrency."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.store import open_store
from newsletter.store.bulk import NewSubscriber
from newsletter.store.campaigns import CampaignStore
from newsletter.store.keys import email_key

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def row(line: int, email: str, *tags: str, first: str = "", **fields: str) -> NewSubscriber:
    return NewSubscriber(line, email, email_key(email), first, "", tags, dict(fields), None)


def begin(camp: CampaignStore, campaign_id: str, batch_size: int) -> None:
    """A digest campaign in preparation, with no posts."""
    camp.begin(
        campaign_id,
        now=NOW,
        subject="s",
        layout="digest",
        segment="",
        transport="test",
        content_hash="h",
        newest_post_date="",
        posts=(),
        batch_size=batch_size,
    )


def test_recipients_are_active_subscribers_by_segment_minus_suppressions(
    store_target: Path | str,
) -> None:
    with open_store(store_target) as store:
        aud = store.audience
        with aud.import_session() as s:
            s.apply(
                [
                    row(2, "a@x.org", "news"),
                    row(3, "b@x.org", "news", "events"),
                    row(4, "c@x.org", "events"),
                    row(5, "d@x.org"),
                ],
                now=NOW,
                dry_run=False,
            )
        assert [r.email for r in aud.iter_recipients()] == [
            "a@x.org",
            "b@x.org",
            "c@x.org",
            "d@x.org",
        ]
        assert [r.email for r in aud.iter_recipients(["events"])] == ["b@x.org", "c@x.org"]
        assert [r.email for r in aud.iter_recipients(["news", "events"])] == [
            "a@x.org",
            "b@x.org",
            "c@x.org",
        ]
        assert aud.suppress("B@X.org", reason="unsubscribed", source="test", now=NOW)
        assert not aud.suppress("b@x.org", reason="bounced", source="test", now=NOW)
        assert aud.get_suppression("b@x.org").reason == "unsubscribed"  # type: ignore[union-attr]
        assert [r.email for r in aud.iter_recipients(["news", "events"])] == ["a@x.org", "c@x.org"]
        assert aud.count_recipients(["news", "events"]) == 2
        assert aud.count_recipients() == 3
        assert aud.is_suppressed("b@X.ORG")
        assert aud.unsuppress("b@x.org", source="test", now=NOW)
        assert not aud.unsuppress("b@x.org", source="test", now=NOW)
        assert aud.count_recipients() == 4
        history = aud.suppression_history("b@x.org")
        assert [h[1] for h in history] == ["suppress", "unsuppress"]


def test_iter_recipients_pages_without_skipping_or_repeating(store_target: Path | str) -> None:
    with open_store(store_target) as store:
        aud = store.audience
        with aud.import_session() as s:
            s.apply(
                [row(i, f"u{i}@x.org", "t" if i % 3 else "other") for i in range(2500)],
                now=NOW,
                dry_run=False,
            )
        for i in range(0, 2500, 7):
            aud.suppress(f"u{i}@x.org", reason="bounced", source="t", now=NOW)
        got = [r.email for r in aud.iter_subscribers(["t"], active_only=True, page=100)]
        want = [f"u{i}@x.org" for i in range(2500) if i % 3 and i % 7]
        assert got == want
        ids = [r.id for r in aud.iter_recipients()]
        assert ids == sorted(set(ids))
        # the lightweight rows a campaign ledger is filled from: the same people, same order
        for segments in ((), ("t",), ("other",)):
            full = [(r.id, r.email, r.first_name) for r in aud.iter_recipients(segments)]
            assert list(aud.iter_recipient_rows(segments, page=100)) == full


def test_unsuppress_only_for_reasons(store_target: Path | str) -> None:
    with open_store(store_target) as store:
        aud = store.audience
        aud.suppress("a@x.org", reason="bounced", source="t", now=NOW)
        assert not aud.unsuppress("a@x.org", source="t", now=NOW, only_reasons=["unsubscribed"])
        assert aud.is_suppressed("a@x.org")


def test_unknown_reason_is_a_programming_error(store_target: Path | str) -> None:
    with open_store(store_target) as store, pytest.raises(ValueError):
        store.audience.suppress("a@x.org", reason="because", source="t", now=NOW)


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from newsletter.store import open_store
    from newsletter.store.bulk import NewSubscriber
    import os, time
    path, who, n, gate = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    now = datetime.now(UTC)
    with open_store(path) as store:
        while not os.path.exists(gate):  # start both writers at the same moment
            time.sleep(0.001)
        aud = store.audience
        for i in range(n):
            aud.suppress(f"{who}-s{i}@x.org", reason="manual", source=who, now=now)
            if i % 25 == 0:
                with aud.import_session() as s:
                    rows = [NewSubscriber(j, f"{who}-{i}-{j}@x.org", f"{who}-{i}-{j}@x.org",
                                          tags=(who,)) for j in range(40)]
                    s.apply(rows, now=now, dry_run=False)
    print("done")
    """
)


def test_two_processes_writing_at_once_lose_nothing(
    tmp_path: Path, store_target: Path | str
) -> None:
    db = store_target
    open_store(db).close()  # migrate first, as the CLI would
    n = 1000
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), who, str(n), str(gate)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("p1", "p2")
    ]
    time.sleep(0.5)
    gate.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    with open_store(db) as store:
        if isinstance(db, Path):
            ok = store.conn.execute("PRAGMA integrity_check").fetchone()[0]
            assert ok == "ok"
        assert store.audience.count_suppressions() == 2 * n
        stats = store.audience.stats()
        assert stats.tags == {"p1": 40 * 40, "p2": 40 * 40}
        assert stats.subscribers == 2 * 40 * 40
        # the two writers really did interleave
        log = [r[0] for r in store.conn.execute("SELECT source FROM suppression_log ORDER BY id")]
        switches = sum(1 for a, b in itertools.pairwise(log) if a != b)
        assert switches >= 1, switches


def test_a_write_lock_held_too_long_is_a_clear_store_error(store_target: Path | str) -> None:
    from newsletter.errors import StoreError
    from newsletter.store import db
    from newsletter.store.audience import AudienceStore

    open_store(store_target).close()
    holder = db.connect(store_target)
    holder.execute("BEGIN IMMEDIATE")
    try:
        waiting = AudienceStore(db.connect(store_target, timeout=0.1))
        with pytest.raises(StoreError, match=r"the database stayed locked for more than 0\.1 s"):
            waiting.suppress("a@x.org", reason="manual", source="t", now=NOW)
        with pytest.raises(StoreError), waiting.import_session() as s:
            s.apply([row(1, "a@x.org")], now=NOW, dry_run=False)
        waiting.conn.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_removed_subscriber_keeps_id_to_address_and_old_databases_upgrade(
    tmp_path: Path,
) -> None:
    from newsletter.store import db as dbmod
    from newsletter.store.audience import MIGRATIONS

    path = tmp_path / "old.db"
    conn = dbmod.connect(path)  # a database made before the tombstone migration existed
    dbmod.migrate(conn, MIGRATIONS[:1])
    conn.close()
    with open_store(path) as store:
        aud = store.audience
        with aud.import_session() as s:
            s.apply([row(2, "Ann@x.org")], now=NOW, dry_run=False)
        first = aud.get_subscriber("ann@x.org")
        assert first is not None and aud.address_for_id(first.id) == "Ann@x.org"
        assert aud.remove_subscriber("ann@x.org", now=NOW)
        assert not aud.remove_subscriber("ann@x.org", now=NOW)
        assert aud.address_for_id(first.id) == "Ann@x.org"  # the tombstone
        with aud.import_session() as s:
            s.apply([row(2, "ann@x.org")], now=NOW, dry_run=False)
        again = aud.get_subscriber("ann@x.org")
        assert again is not None and again.id != first.id  # ids are never reused
        assert aud.address_for_id(again.id) == "ann@x.org"
        assert aud.address_for_id(first.id) == "Ann@x.org"
        assert aud.address_for_id(again.id + 100) is None


@pytest.mark.parametrize(("batch_size", "chunk"), [(7, 100), (1000, 50_000), (10, 30), (1, 3)])
def test_ledger_filled_in_sqlite_matches_the_rows_path(
    store_target: Path | str, batch_size: int, chunk: int
) -> None:
    # `send` fills a campaign's ledger with INSERT ... SELECT; it must give exactly the rows,
    # order and batches that writing iter_recipient_rows one by one gives
    with open_store(store_target) as store:
        aud, camp = store.audience, store.campaigns
        with aud.import_session() as s:
            s.apply(
                [row(i, f"u{i}@x.org", "t" if i % 3 else "other") for i in range(1234)],
                now=NOW,
                dry_run=False,
            )
        for i in range(0, 1234, 11):
            aud.suppress(f"u{i}@x.org", reason="bounced", source="t", now=NOW)

        def ledger(cid: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
            people = camp.conn.execute(
                "SELECT recipient_id, batch_no, email, first_name, state FROM campaign_ledger"
                " WHERE campaign_id = ? ORDER BY batch_no, recipient_id",
                (cid,),
            ).fetchall()
            batches = camp.conn.execute(
                "SELECT batch_no, size, state FROM campaign_batches WHERE campaign_id = ?"
                " ORDER BY batch_no",
                (cid,),
            ).fetchall()
            return [tuple(p) for p in people], [tuple(b) for b in batches]

        for segments in ((), ("t",), ("nobody",)):
            rows = [(str(i), e, f) for i, e, f in aud.iter_recipient_rows(segments)]
            for cid in ("a", "b"):
                begin(camp, cid, batch_size)
            a = camp.add_recipients("a", rows, batch_size=batch_size)
            b = camp.add_audience(
                "b", aud.recipient_query(segments), batch_size=batch_size, chunk=chunk
            )
            assert a == b == len(rows) == aud.count_recipients(segments)
            assert ledger("a") == ledger("b")
            if rows:
                assert (
                    ledger("b")[1][-1][1] == len(rows) - (len(rows) - 1) // batch_size * batch_size
                )


def test_ledger_made_with_text_ids_is_migrated_to_integer_ids(tmp_path: Path) -> None:
    from newsletter.store import MIGRATIONS
    from newsletter.store import db as dbmod

    path = tmp_path / "old.db"
    conn = dbmod.connect(path)  # a store from before campaigns.0002_integer_recipient_ids
    dbmod.migrate(conn, [m for m in MIGRATIONS if m[0] != "campaigns.0002_integer_recipient_ids"])
    conn.execute("INSERT INTO campaigns(id, created_at, updated_at) VALUES ('c', '2026-11-01', '')")
    old = [("c", rid, 0, f"u{rid}@x.org", "", "pending") for rid in ("9", "10", "11")]
    conn.executemany(
        "INSERT INTO campaign_ledger(campaign_id, recipient_id, batch_no, email, first_name,"
        " state) VALUES (?, ?, ?, ?, ?, ?)",
        old,
    )
    conn.commit()
    conn.close()
    with open_store(path) as store:
        camp = store.campaigns
        kinds = camp.conn.execute(
            "SELECT recipient_id, typeof(recipient_id) FROM campaign_ledger ORDER BY rowid"
        ).fetchall()
        assert [tuple(k) for k in kinds] == [(9, "integer"), (10, "integer"), (11, "integer")]
        rows = camp.batch_rows("c", 0)
        assert [tuple(r) for r in rows] == [(r[1], r[3], "") for r in old]  # still text ids
        camp.skip("c", ["10"], "suppressed")  # ids from custom_args are text: still found
        assert camp.record_event("c", "11", "delivered", NOW, "ev-1")
        got = camp.conn.execute(
            "SELECT recipient_id, state, last_event FROM campaign_ledger ORDER BY recipient_id"
        ).fetchall()
        assert [tuple(g) for g in got] == [
            (9, "pending", ""),
            (10, "skipped", ""),
            (11, "pending", "delivered"),
        ]


def test_subscribers_with_reasons_match_one_lookup_each(store_target: Path | str) -> None:
    with open_store(store_target) as store:
        aud = store.audience
        with aud.import_session() as s:
            s.apply(
                [row(i, f"U{i}@x.org", "t" if i % 2 else "") for i in range(250)],
                now=NOW,
                dry_run=False,
            )
        for i in range(0, 250, 9):
            aud.suppress(
                f"u{i}@X.org", reason="bounced" if i % 2 else "unsubscribed", source="t", now=NOW
            )
        for segments, active in (((), False), (("t",), False), ((), True)):
            got = [
                (sub.email, reason)
                for sub, reason in aud.iter_subscribers_with_reasons(
                    segments, active_only=active, page=40
                )
            ]
            want = []
            for sub in aud.iter_subscribers(segments, active_only=active):
                sup = aud.get_suppression(sub.email)
                want.append((sub.email, sup.reason if sup else ""))
            assert got == want and len(got) > 40
            assert any(reason for _, reason in got) != active


def test_recipients_go_only_into_a_campaign_being_prepared(store_target: Path | str) -> None:
    # the rule the ledger's foreign key used to enforce row by row, now checked once per call
    from newsletter.errors import StoreError

    with open_store(store_target) as store:
        camp = store.campaigns
        rows = [("1", "a@x.org", "A")]
        with pytest.raises(StoreError, match="campaign nope does not exist"):
            camp.add_recipients("nope", rows, batch_size=10)
        with pytest.raises(StoreError, match="campaign nope does not exist"):
            camp.add_audience("nope", store.audience.recipient_query(()), batch_size=10)
        begin(camp, "c", 10)
        assert camp.add_recipients("c", rows, batch_size=10) == 1
        assert camp.ready("c", now=NOW) == 1
        with pytest.raises(StoreError, match="campaign c is ready, not being prepared"):
            camp.add_recipients("c", [("2", "b@x.org", "B")], batch_size=10)
        count = camp.conn.execute("SELECT count(*) FROM campaign_ledger").fetchone()[0]
        assert count == 1
