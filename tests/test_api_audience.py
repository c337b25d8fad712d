"""The audience part of the public API: what ``subscribers``/``suppressions`` commands call."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from newsletter import Newsletter
from newsletter.config import Secrets, load_settings
from newsletter.errors import ConfigError, InputError, SecretMissing
from newsletter.subscribers import Notice


@pytest.fixture
def nl(tmp_path: Path) -> Newsletter:
    (tmp_path / "newsletter.toml").write_text(f'[store]\npath = "{tmp_path / "a.db"}"\n')
    people = tmp_path / "people.csv"
    people.write_text(
        "email,first_name,tags\nlena@example.net,Lena,news;talks\nomar@example.net,Omar,news\n"
        "not-an-address,Nobody,\n",
        encoding="utf-8",
    )
    newsletter = Newsletter(load_settings(tmp_path / "newsletter.toml"), Secrets())
    notices: list[Notice] = []
    report = newsletter.subscribers.import_csv(people, tags=["spring"], on_notice=notices.append)
    assert report.rejected == 1
    assert [n.kind for n in notices] == ["rejected"]
    return newsletter


def test_import_options_are_checked_before_the_store_changes(nl: Newsletter) -> None:
    with pytest.raises(ConfigError, match="one character"):
        nl.subscribers.import_csv("people.csv", delimiter=";;")
    with pytest.raises(ConfigError, match="--status pending"):
        nl.subscribers.import_csv("people.csv", send_confirmations=True)
    assert nl.subscribers.stats().subscribers == 2


def test_reasons_stats_and_export(nl: Newsletter, tmp_path: Path) -> None:
    assert nl.suppressions.add_many(["omar@example.net"], reason="bounced", source="cli") == 1
    pairs = {s.email: reason for s, reason in nl.subscribers.with_reasons()}
    assert pairs == {"lena@example.net": "", "omar@example.net": "bounced"}
    active = [r["email"] for r in nl.subscribers.records(["news"], active_only=True)]
    assert active == ["lena@example.net"]
    st = nl.subscribers.stats()
    assert (st.subscribers, st.active, dict(st.suppressions_by_reason)) == (2, 1, {"bounced": 1})
    out = io.StringIO()
    assert nl.subscribers.export_csv(out) == 1
    assert "lena@example.net" in out.getvalue() and "omar" not in out.getvalue()
    with pytest.raises(InputError, match="cannot write the file"):
        nl.subscribers.export_csv(tmp_path / "no-such-folder" / "x.csv")


def test_remove_and_suppress_and_lift(nl: Newsletter) -> None:
    with pytest.raises(InputError, match="not a valid email address"):
        nl.subscribers.remove_and_suppress("lena@")
    assert nl.subscribers.get("lena@example.net") is not None  # nothing changed
    done = nl.subscribers.remove_and_suppress("lena@example.net", source="cli")
    assert (done.removed, done.suppressed) == (True, True)
    again = nl.subscribers.remove_and_suppress("lena@example.net")
    assert (again.removed, again.suppressed) == (False, False)
    with pytest.raises(InputError):  # one bad address: none is suppressed
        nl.suppressions.add_many(["zed@example.net", "bad@"])
    assert "zed@example.net" not in nl.suppressions
    assert nl.suppressions.count() == 1
    assert [s.reason for s in nl.suppressions.matching("manual")] == ["manual"]
    lifted = nl.suppressions.remove_many(["lena@example.net", "zed@example.net"], source="cli")
    assert lifted == ["lena@example.net"]
    assert len(nl.suppressions.history("lena@example.net")) == 2


def test_sync_needs_a_key(nl: Newsletter) -> None:
    with pytest.raises(SecretMissing, match="SENDGRID_API_KEY"):
        nl.suppressions.sync()
