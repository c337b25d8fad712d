"""Secrets come from the environment only: never in output, logs or any file the tool writes."""

from __future__ import annotations

from pathlib import Path

from send_cli_helpers import SEND, make_site, run

from newsletter.providers.sendgrid.fake import FaultPlan, serve_in_thread

API_KEY = "SG.leak-canary-api-key-0123456789"
SECRET = "leak-canary-signing-secret-9876543210abc"


def test_a_whole_send_writes_neither_the_api_key_nor_the_signing_secret(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    keys = {"SENDGRID_API_KEY": API_KEY, "NEWSLETTER_SECRET": SECRET}
    outputs: list[str] = []
    with serve_in_thread(FaultPlan(script=["500", "ok"]), tmp_path / "fake.db") as url:
        for args in (
            [*SEND, "--transport", "sendgrid"],
            [*SEND, "--transport", "sendgrid", "--new-campaign", "--skip-sync"],
            [*SEND, "--transport", "outbox", "--new-campaign"],
            ["status", "--json"],
            ["campaigns"],
            ["render", "--month", "2026-10", "--out", "out", "--as", "ada.lovelace@example.com"],
            ["suppressions", "list"],
        ):
            proc = run(site, *args, SENDGRID_API_URL=url, **keys)
            outputs += [proc.stdout, proc.stderr]
    assert "not pulled (--skip-sync)" in outputs[3]
    for text in outputs:
        assert API_KEY not in text and SECRET not in text
    written = [p for p in site.rglob("*") if p.is_file() and p.suffix not in (".md", ".j2")]
    assert any(p.suffix == ".eml" for p in written) and any(
        p.name == "newsletter.db" for p in written
    )
    for path in written:
        data = path.read_bytes()
        assert API_KEY.encode() not in data, path
        assert SECRET.encode() not in data, path
