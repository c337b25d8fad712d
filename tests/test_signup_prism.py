"""Confirmation emails through the SendGrid transport (a batch of readers in one request, each
with their own link) are a request SendGrid's spec accepts
(Prism, as in test_contract_prism.py; skipped only when Prism cannot start and
NEWSLETTER_REQUIRE_PRISM is unset)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from test_contract_prism import prism  # noqa: F401 - the fixture

from newsletter import signup
from newsletter.config import load_settings
from newsletter.providers.sendgrid.transport import SendGridTransport
from newsletter.signup.mail import ConfirmationEmail, Mailer, send_queued
from newsletter.store import open_store
from newsletter.transports.base import Sender

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_confirmation_email_is_a_valid_mail_send(prism: str, tmp_path: Path) -> None:  # noqa: F811
    policy = signup.Policy(per_client_per_hour=0, per_minute=0)
    transport = SendGridTransport("SG.prism-key", api_url=prism, timeout=10)
    mailer = Mailer(
        transport,
        ConfirmationEmail.render(load_settings(cwd=tmp_path)),
        Sender("news@news.example.org", "News", "hello@news.example.org"),
        "prism-test-secret-0123456789",
        "https://news.example.org",
    )
    with open_store(tmp_path / "n.db") as store:
        for address in ("ann@example.net", "bo@example.net", "cy@example.net"):
            form = signup.clean_form({"email": address}, [], policy)
            signup.submit(store, form, client_address="1", secret="s" * 20, policy=policy, now=NOW)
        report = send_queued(store, mailer, now=lambda: NOW)
        assert (report.sent, report.failed, report.batches) == (3, 0, 1)  # one request: a 202
        assert store.signup.queued() == 0
    transport.close()
