"""``suppressions sync`` against a fake SendGrid (ours, a real server) checked against Prism."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from audience_helpers import serve
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from newsletter.cli import main
from newsletter.errors import ProviderRejected, ProviderUnavailable, RateLimited, TransportError
from newsletter.providers.sendgrid.suppression_sync import SuppressionClient, sync_suppressions
from newsletter.store import Store, open_store

NOW = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
KEY = "SG.test-key"
PRISM = Path(__file__).resolve().parents[2] / "shared" / "sendgrid" / "start-prism"
if not PRISM.exists():
    PRISM = Path("/work/shared/sendgrid/start-prism")


@dataclass
class FakeSendGrid:
    """SendGrid's suppression GET endpoints over in-memory lists, with failure injection."""

    unsubscribes: list[str] = field(default_factory=list)
    bounces: list[str] = field(default_factory=list)
    spam: list[str] = field(default_factory=list)
    groups: dict[int, list[str]] = field(default_factory=dict)
    faults: list[int] = field(default_factory=list)  # statuses to answer with, in order
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    together: int = 0  # hold the first N requests until all N are in (proves they overlap)

    def app(self) -> Starlette:
        arrived = asyncio.Event()

        async def handle(request: Request) -> Response:
            self.requests.append((request.url.path, dict(request.query_params)))
            if len(self.requests) <= self.together:
                if len(self.requests) == self.together:
                    arrived.set()
                try:
                    await asyncio.wait_for(arrived.wait(), timeout=5)
                except TimeoutError:
                    return JSONResponse({"errors": [{"message": "not concurrent"}]}, 503)
            if request.headers.get("authorization") != f"Bearer {KEY}":
                return JSONResponse({"errors": [{"message": "authorization required"}]}, 401)
            if self.faults:
                status = self.faults.pop(0)
                headers = {"X-RateLimit-Reset": str(int(datetime.now(UTC).timestamp()))}
                return JSONResponse({"errors": [{"message": "fault"}]}, status, headers=headers)
            limit = int(request.query_params.get("limit", "500"))
            offset = int(request.query_params.get("offset", "0"))
            if not 1 <= limit <= 500:
                return JSONResponse({"errors": [{"field": "limit", "message": "<= 500"}]}, 400)
            path = request.url.path
            page: list[Any]
            if path.endswith("/unsubscribes"):
                page = [
                    {"created": 1443651141 + i, "email": e} for i, e in enumerate(self.unsubscribes)
                ]
            elif path.endswith("/bounces"):
                page = [
                    {
                        "created": 1250337600,
                        "email": e,
                        "reason": "550 5.1.1 unknown user",
                        "status": "5.1.1",
                    }
                    for e in self.bounces
                ]
            elif path.endswith("/spam_reports"):
                page = [
                    {"created": 1443651141, "email": e, "ip": "10.63.202.100"} for e in self.spam
                ]
            else:
                page = list(self.groups.get(int(request.path_params["gid"]), []))
            return JSONResponse(page[offset : offset + limit])

        return Starlette(
            routes=[
                Route("/v3/suppression/{name}", handle),
                Route("/v3/asm/groups/{gid:int}/suppressions", handle),
            ]
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeSendGrid, str]]:
    sg = FakeSendGrid()
    with serve(sg.app()) as url:
        yield sg, url


def test_sync_pulls_every_list_page_by_page(fake: tuple[FakeSendGrid, str], tmp_path: Path) -> None:
    sg, url = fake
    sg.unsubscribes = [f"u{i}@x.org" for i in range(1203)]
    sg.bounces = ["Hard@X.org", "hard2@x.org"]
    sg.spam = ["angry@x.org"]
    sg.groups = {42: [f"g{i}@x.org" for i in range(500)] + ["u1@x.org"]}
    with open_store(tmp_path / "n.db") as store:
        store.audience.suppress("u0@x.org", reason="manual", source="t", now=NOW)
        with SuppressionClient(KEY, url) as client:
            report = sync_suppressions(store.audience, client, now=NOW, group_ids=[42])
        assert report.fetched == {
            "unsubscribes": 1203,
            "bounces": 2,
            "spam_reports": 1,
            "group 42": 501,
        }
        assert report.added == {
            "unsubscribes": 1202,
            "bounces": 2,
            "spam_reports": 1,
            "group 42": 500,
        }
        aud = store.audience
        assert aud.count_suppressions() == 1203 + 2 + 1 + 500
        assert aud.get_suppression("u0@x.org").reason == "manual"  # type: ignore[union-attr]
        bounce = aud.get_suppression("hard@x.org")
        assert bounce is not None and bounce.reason == "bounced" and "5.1.1" in bounce.detail
        assert aud.get_suppression("g3@x.org").reason == "group_unsubscribed"  # type: ignore[union-attr]
        assert aud.get_suppression("angry@x.org").source == "sendgrid-sync"  # type: ignore[union-attr]
        # a second sync adds nothing
        with SuppressionClient(KEY, url) as client:
            again = sync_suppressions(store.audience, client, now=NOW, group_ids=[42])
        assert sum(again.added.values()) == 0
    unsub_calls = [q for p, q in sg.requests if p.endswith("/unsubscribes")]
    assert [q["offset"] for q in unsub_calls[:3]] == ["0", "500", "1000"]
    assert all(q["limit"] == "500" for q in unsub_calls)


def test_rate_limit_waits_and_retries(fake: tuple[FakeSendGrid, str], tmp_path: Path) -> None:
    sg, url = fake
    sg.unsubscribes = ["a@x.org"]
    sg.faults = [429, 429]
    waits: list[float] = []
    with (
        open_store(tmp_path / "n.db") as store,
        SuppressionClient(KEY, url, sleep=waits.append) as c,
    ):
        report = sync_suppressions(store.audience, c, now=NOW)
    assert report.added["unsubscribes"] == 1 and len(waits) == 2


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        (401, ProviderRejected, "SENDGRID_API_KEY needs read access to Suppressions"),
        (403, ProviderRejected, "refused the API key"),
        (500, ProviderUnavailable, "SendGrid failed on GET /v3/"),  # whichever list asked first
        (400, ProviderRejected, "SendGrid rejected GET"),
    ],
)
def test_http_errors_are_translated(
    fake: tuple[FakeSendGrid, str],
    tmp_path: Path,
    fault: int,
    error: type[TransportError],
    text: str,
) -> None:
    sg, url = fake
    sg.faults = [fault]
    with (
        open_store(tmp_path / "n.db") as store,
        SuppressionClient(KEY, url, max_retries=0) as client,  # retries: test_hardening_waits
        pytest.raises(error) as err,
    ):
        sync_suppressions(store.audience, client, now=NOW)
    assert text in err.value.format() and f"HTTP {fault}" in err.value.format()
    assert err.value.status == fault


def test_unreachable_and_slow_servers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        open_store(tmp_path / "n.db") as store,
        SuppressionClient(KEY, f"http://127.0.0.1:{port}", timeout=2, max_retries=0) as client,
        pytest.raises(ProviderUnavailable, match="cannot reach SendGrid"),
    ):
        sync_suppressions(store.audience, client, now=NOW)
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with (
            open_store(tmp_path / "n.db") as store,
            SuppressionClient(KEY, url, timeout=0.3, max_retries=0) as client,
            pytest.raises(ProviderUnavailable, match="did not answer"),
        ):
            sync_suppressions(store.audience, client, now=NOW)


def test_first_pages_of_all_lists_are_asked_for_at_once(
    fake: tuple[FakeSendGrid, str], tmp_path: Path
) -> None:
    sg, url = fake
    sg.together = 4  # three global lists and one group: a one-at-a-time client gets 503s
    sg.unsubscribes, sg.spam, sg.groups = (
        ["u@x.org", "both@x.org"],
        ["both@x.org"],
        {9: ["g@x.org"]},
    )
    with open_store(tmp_path / "n.db") as store, SuppressionClient(KEY, url) as client:
        report = sync_suppressions(store.audience, client, now=NOW, group_ids=[9])
        reasons = {s.email: s.reason for s in store.audience.iter_suppressions()}
    assert report.fetched == {"unsubscribes": 2, "bounces": 0, "spam_reports": 1, "group 9": 1}
    # applied in list order: an address on two lists keeps the first list's reason
    assert reasons == {
        "u@x.org": "unsubscribed",
        "both@x.org": "unsubscribed",
        "g@x.org": "group_unsubscribed",
    }


def test_rate_limit_without_a_near_reset_is_an_error(
    fake: tuple[FakeSendGrid, str], tmp_path: Path
) -> None:
    sg, url = fake

    sg.faults = [429] * 30  # every list runs out of retries, whichever asks first
    with (
        open_store(tmp_path / "n.db") as store,
        SuppressionClient(KEY, url, sleep=lambda s: None) as c,
        pytest.raises(RateLimited),
    ):
        sync_suppressions(store.audience, c, now=NOW)


def test_cli_sync_needs_a_key_and_reports(fake: tuple[FakeSendGrid, str], tmp_path: Path) -> None:
    sg, url = fake
    sg.spam = ["s@x.org"]
    (tmp_path / "newsletter.toml").write_text(f'[store]\npath = "{tmp_path / "n.db"}"\n')
    cfg = ["--config", str(tmp_path / "newsletter.toml")]
    runner = CliRunner()
    result = runner.invoke(main, [*cfg, "suppressions", "sync"], env={"SENDGRID_API_KEY": ""})
    assert result.exit_code == 2 and "SENDGRID_API_KEY is not set" in result.output
    env = {"SENDGRID_API_KEY": KEY, "SENDGRID_API_URL": url}
    result = runner.invoke(main, [*cfg, "suppressions", "sync"], env=env)
    assert result.exit_code == 0, result.output
    assert "spam_reports: 1 listed, 1 new" in result.output
    assert KEY not in result.output
    result = runner.invoke(main, [*cfg, "suppressions", "list"])
    assert "s@x.org\tspam_report\tsendgrid-sync" in result.output
    env["SENDGRID_API_KEY"] = "SG.wrong"
    result = runner.invoke(main, [*cfg, "suppressions", "sync"], env=env)
    assert result.exit_code == 1 and "error: SendGrid refused the API key" in result.output
    assert "Traceback" not in result.output and "SG.wrong" not in result.output


# -- the contract: our fake and our client against Prism (SendGrid's OpenAPI spec) ------------


@pytest.fixture(scope="module")
def prism() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    required = bool(os.environ.get("NEWSLETTER_REQUIRE_PRISM"))
    try:
        out = subprocess.run(
            [str(PRISM), str(port)], capture_output=True, text=True, timeout=180, check=True
        )
        pid = int(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        if required:
            raise
        pytest.skip(f"Prism could not start ({err}); set NEWSLETTER_REQUIRE_PRISM=1 to insist")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.kill(pid, signal.SIGTERM)


ENDPOINTS = [
    "/v3/suppression/unsubscribes",
    "/v3/suppression/bounces",
    "/v3/suppression/spam_reports",
    "/v3/asm/groups/42/suppressions",
]


def _shape(value: Any) -> Any:
    if isinstance(value, list):
        return ["list", *sorted({json.dumps(_shape(v)) for v in value})]
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    return type(value).__name__


@pytest.mark.parametrize("path", ENDPOINTS)
def test_our_fake_answers_in_the_shape_prism_does(
    prism: str, fake: tuple[FakeSendGrid, str], path: str
) -> None:
    sg, url = fake
    sg.unsubscribes, sg.bounces, sg.spam, sg.groups = (
        ["a@x.org"],
        ["b@x.org"],
        ["c@x.org"],
        {42: ["d@x.org"]},
    )
    headers = {"Authorization": f"Bearer {KEY}"}
    params = {"limit": 500, "offset": 0}
    theirs = httpx.get(prism + path, headers=headers, params=params)
    assert theirs.status_code == 200, theirs.headers.get("sl-violations")
    ours = httpx.get(url + path, headers=headers, params=params)
    assert ours.status_code == 200
    assert _shape(ours.json()) == _shape(theirs.json())
    # and both refuse a request without the key
    assert httpx.get(prism + path).status_code == 401
    assert httpx.get(url + path).status_code == 401


def test_our_client_syncs_from_prism(prism: str, tmp_path: Path) -> None:
    with open_store(tmp_path / "n.db") as store, SuppressionClient(KEY, prism) as client:
        report = sync_suppressions(store.audience, client, now=NOW, group_ids=[42])
        assert report.fetched == {"unsubscribes": 2, "bounces": 2, "spam_reports": 2, "group 42": 2}
        emails = {s.email: s.reason for s in store.audience.iter_suppressions()}
    assert emails == {
        "user1@example.com": "unsubscribed",
        "user2@example.com": "unsubscribed",
        "example@example.com": "bounced",
        "example2@example.com": "group_unsubscribed",
    }


def test_sync_before_send_runs_only_with_a_key_and_the_setting(
    fake: tuple[FakeSendGrid, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.cli import App
    from newsletter.providers.sendgrid.suppression_sync import sync_before_send as sync

    def sync_before_send(app: App, store: Store, *, skip: bool = False) -> str | None:
        return sync(app.settings, app.secrets, store.audience, skip=skip)

    sg, url = fake
    sg.bounces = ["b@x.org"]
    sg.groups = {9: ["g@x.org"]}
    toml = tmp_path / "newsletter.toml"
    toml.write_text(f'[store]\npath = "{tmp_path / "n.db"}"\n[send]\nasm_group_id = 9\n')
    monkeypatch.setenv("SENDGRID_API_URL", url)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    app = App(config=toml)
    with open_store(tmp_path / "n.db") as store:
        assert sync_before_send(app, store) is None
        monkeypatch.setenv("SENDGRID_API_KEY", KEY)
        summary = sync_before_send(app, store)
        assert summary is not None and "group 9: 1 listed, 1 new" in summary
        assert store.audience.is_suppressed("b@x.org") and store.audience.is_suppressed("g@x.org")
    toml.write_text(toml.read_text() + "sync_suppressions = false\n")
    with open_store(tmp_path / "n.db") as store:
        assert sync_before_send(App(config=toml), store) is None


@pytest.mark.parametrize("status", [401, 403])
def test_sync_before_send_with_a_mail_send_only_key_says_the_way_out(
    fake: tuple[FakeSendGrid, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    from newsletter.cli import App
    from newsletter.providers.sendgrid.suppression_sync import sync_before_send as sync

    def sync_before_send(app: App, store: Store, *, skip: bool = False) -> str | None:
        return sync(app.settings, app.secrets, store.audience, skip=skip)

    sg, url = fake
    sg.faults = [status]  # what SendGrid answers a key without Suppressions read access
    toml = tmp_path / "newsletter.toml"
    toml.write_text(f'[store]\npath = "{tmp_path / "n.db"}"\n')
    monkeypatch.setenv("SENDGRID_API_URL", url)
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    with open_store(tmp_path / "n.db") as store:
        with pytest.raises(ProviderRejected) as err:
            sync_before_send(App(config=toml), store)
        message = err.value.format()
        assert "'Suppressions' read permission" in message
        assert "--skip-sync" in message and "send.sync_suppressions = false" in message
        assert message.endswith(f"(HTTP {status})") and KEY not in message
        skipped = sync_before_send(App(config=toml), store, skip=True)
        assert skipped is not None and "--skip-sync" in skipped
        assert store.audience.count_suppressions() == 0
