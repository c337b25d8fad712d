"""Every check a real send depends on, each ``ok``, ``warn`` or ``fail`` with its fix.

``newsletter doctor`` prints them; ``send`` through SendGrid runs the local ones first and
refuses while one fails (:func:`failures`). Local checks come first (settings, secrets), then
the store (reachable, migrated, how many people it would reach), then the ones that ask
SendGrid: the API key's scopes (``GET /v3/scopes``) and whether the sender may send
(``GET /v3/verified_senders``, ``GET /v3/whitelabel/domains``). The API key is only ever sent to
SendGrid in the Authorization header; no check result contains it or the signing secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from newsletter.config import Secrets, Settings
from newsletter.site_setup import is_placeholder_address
from newsletter.unsubscribe import MIN_SECRET_BYTES

if TYPE_CHECKING:  # httpx is imported when SendGrid is asked, not by every command's start-up
    import httpx

Status = Literal["ok", "warn", "fail"]

MIN_SECRET_LENGTH = MIN_SECRET_BYTES  # one rule: newsletter.unsubscribe
#: scopes the pre-send sync needs, one per list; ``suppression.read`` covers them all
SYNC_SCOPES = (
    "suppression.unsubscribes.read",
    "suppression.bounces.read",
    "suppression.spam_reports.read",
)
ASM_SCOPE = "asm.groups.suppressions.read"
SCHEDULE_SCOPES = ("mail.batch.create", "user.scheduled_sends.create")


@dataclass(frozen=True, slots=True)
class Check:
    """One check: its name, ``ok``/``warn``/``fail``, what was found, and how to fix it."""

    name: str
    status: Status
    message: str
    fix: str = ""
    setting: str = ""  # the setting or variable it is about, e.g. "email.from_email"

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def failures(checks: Iterable[Check]) -> list[Check]:
    """The checks that stop a real send."""
    return [c for c in checks if c.failed]


def _real(transport: str) -> bool:
    return transport == "sendgrid"


def local_checks(settings: Settings, secrets: Secrets, *, transport: str) -> Iterator[Check]:
    """The checks that need no network: sender, unsubscribe URL, secret, key, webhook, address.

    For a rehearsal transport (outbox, memory) a problem that only a real send hits is a warning.
    """
    bad: Status = "fail" if _real(transport) else "warn"
    sender = settings.email.from_email.strip()
    if not sender or "@" not in sender:
        yield Check(
            "sender",
            bad,
            "no sender address",
            "set [email] from_email to an address on your own domain",
            "email.from_email",
        )
    elif is_placeholder_address(sender):
        yield Check(
            "sender",
            bad,
            f"{sender} is on a placeholder domain (example.com/.org/.net are reserved)",
            "set [email] from_email to an address on a domain you authenticated in SendGrid",
            "email.from_email",
        )
    else:
        yield Check("sender", "ok", sender, setting="email.from_email")

    base = settings.unsubscribe.base_url
    host = urlsplit(base).hostname or ""
    if base.startswith("https://") and is_placeholder_address("x@" + host):
        yield Check(
            "unsubscribe URL",
            bad,
            f"{base} is on a placeholder domain: nobody can reach its unsubscribe links",
            "set [unsubscribe] base_url to the public https URL of `newsletter serve`",
            "unsubscribe.base_url",
        )
    elif base.startswith("https://"):
        yield Check("unsubscribe URL", "ok", base, setting="unsubscribe.base_url")
    else:
        yield Check(
            "unsubscribe URL",
            bad,
            f"{base} is not https: mail clients' one-click unsubscribe needs https",
            "set [unsubscribe] base_url to the public https URL of `newsletter serve`",
            "unsubscribe.base_url",
        )

    secret = secrets.signing_key
    size = len(secret.encode("utf-8"))  # the HMAC key is its bytes
    if size >= MIN_SECRET_LENGTH:
        yield Check("secret", "ok", f"NEWSLETTER_SECRET is set ({size} bytes)")
    else:
        found = f"only {size} bytes" if secret else "not set"
        yield Check(
            "secret",
            bad,
            f"NEWSLETTER_SECRET is {found}; it signs every unsubscribe link",
            "export NEWSLETTER_SECRET=$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))') and keep it: changing it breaks sent links",
            "NEWSLETTER_SECRET",
        )

    if secrets.sendgrid_api_key:
        yield Check("API key", "ok", "SENDGRID_API_KEY is set", setting="SENDGRID_API_KEY")
    elif _real(transport):
        yield Check(
            "API key",
            "fail",
            "SENDGRID_API_KEY is not set",
            "create a key (SendGrid > Settings > API Keys, Restricted Access: Mail Send, "
            "Suppressions read) and export SENDGRID_API_KEY",
            "SENDGRID_API_KEY",
        )
    else:
        yield Check("API key", "ok", f"not needed: the {transport} transport sends nothing")

    if settings.unsubscribe.webhook_public_key:
        yield Check(
            "webhook key", "ok", "events must be signed", setting="unsubscribe.webhook_public_key"
        )
    else:
        yield Check(
            "webhook key",
            "warn",
            "no webhook key: `newsletter serve` accepts unsigned bounce and spam events",
            "turn on Signature Verification (SendGrid > Mail Settings > Event Webhook) and set "
            "[unsubscribe] webhook_public_key to its public key",
            "unsubscribe.webhook_public_key",
        )

    if settings.email.postal_address.strip():
        yield Check("postal address", "ok", settings.email.postal_address.strip())
    else:
        yield Check(
            "postal address",
            "fail",
            "no postal address: every footer needs one (CAN-SPAM) and lint stops the send",
            "set [email] postal_address",
            "email.postal_address",
        )


class _SendGrid:
    """The three read-only calls the checks make, with one place that turns errors into text."""

    def __init__(self, client: httpx.Client, secrets: Secrets) -> None:
        self.client = client
        self.base = secrets.sendgrid_api_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {secrets.sendgrid_api_key}"}

    def get(self, path: str) -> tuple[int, Any]:
        """(status, JSON body); status 0 when SendGrid could not be reached."""
        import httpx

        try:
            response = self.client.get(self.base + path, headers=self.headers)
        except httpx.HTTPError as err:
            return 0, f"could not reach SendGrid at {self.base} ({type(err).__name__})"
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None


def _scopes_check(scopes: set[str], settings: Settings) -> Check:
    missing: list[str] = []
    if "mail.send" not in scopes:
        missing.append("Mail Send (mail.send)")
    if settings.send.sync_suppressions and "suppression.read" not in scopes:
        lacking = [s for s in SYNC_SCOPES if s not in scopes]
        if lacking:
            missing.append(f"Suppressions read ({', '.join(lacking)})")
    if settings.send.asm_group_id and settings.send.sync_suppressions and ASM_SCOPE not in scopes:
        missing.append(f"Unsubscribe Groups read ({ASM_SCOPE})")
    if missing:
        return Check(
            "API key scopes",
            "fail",
            "the key lacks " + "; ".join(missing),
            "edit the key (SendGrid > Settings > API Keys) and grant them"
            + (
                ", or set [send] sync_suppressions = false to send with Mail Send alone"
                if "mail.send" in scopes
                else ""
            ),
            "SENDGRID_API_KEY",
        )
    note = ""
    if not all(s in scopes for s in SCHEDULE_SCOPES):
        note = " (no scheduled-send scopes: `send --send-at` cannot be cancelled)"
    return Check("API key scopes", "ok", "Mail Send and suppression read" + note)


def _identity_check(api: _SendGrid, sender: str) -> Check:
    address = sender.strip().lower()
    domain = address.rpartition("@")[2]
    status, body = api.get("/v3/verified_senders")
    senders = body.get("results", []) if status == 200 and isinstance(body, dict) else []
    for entry in senders:
        if (
            isinstance(entry, dict)
            and str(entry.get("from_email", "")).lower() == address
            and entry.get("verified")
        ):
            return Check("sender identity", "ok", f"{sender} is a verified sender")
    dstatus, domains = api.get("/v3/whitelabel/domains")
    for entry in domains if dstatus == 200 and isinstance(domains, list) else []:
        name = str(entry.get("domain", "")).lower() if isinstance(entry, dict) else ""
        if name and (domain == name or domain.endswith("." + name)) and entry.get("valid"):
            return Check("sender identity", "ok", f"{domain} is an authenticated domain")
    if status != 200 and dstatus != 200:
        return Check(
            "sender identity",
            "warn",
            f"could not check whether {sender} may send (HTTP {status}/{dstatus})",
            "grant the key Sender Authentication read access, or check it in SendGrid",
            "email.from_email",
        )
    return Check(
        "sender identity",
        "fail",
        f"{sender} is neither a verified sender nor on an authenticated domain",
        "authenticate the domain (SendGrid > Settings > Sender Authentication) or verify "
        "this address as a single sender",
        "email.from_email",
    )


def sendgrid_checks(settings: Settings, secrets: Secrets, client: httpx.Client) -> list[Check]:
    """The checks that ask SendGrid: the key's scopes and the sender's identity."""
    api = _SendGrid(client, secrets)
    status, body = api.get("/v3/scopes")
    if status == 0:
        return [Check("API key scopes", "fail", str(body), "check SENDGRID_API_URL and network")]
    if status in (401, 403):
        return [
            Check(
                "API key scopes",
                "fail",
                f"SendGrid refused the API key (HTTP {status})",
                "create a new key and export it as SENDGRID_API_KEY",
                "SENDGRID_API_KEY",
            )
        ]
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("scopes"), list):
        return [Check("API key scopes", "warn", f"unexpected answer from /v3/scopes ({status})")]
    checks = [_scopes_check({str(s) for s in body["scopes"]}, settings)]
    if not is_placeholder_address(settings.email.from_email):
        checks.append(_identity_check(api, settings.email.from_email))
    return checks


def store_check(settings: Settings) -> Check:
    """The store a send reads its audience from and writes its ledger to: reachable, set up,
    its migrations applied, and how many people a send to everyone would reach. Looks only:
    it creates nothing and migrates nothing."""
    from newsletter.errors import StoreError
    from newsletter.store import inspect_store

    where = "PostgreSQL at " if settings.store_url else "SQLite file "
    setting = "store.url or NEWSLETTER_DATABASE_URL" if settings.store_url else "store.path"
    try:
        health = inspect_store(settings.store_target)
    except StoreError as err:
        fix = ""
        if settings.store_url:
            fix = (
                "check [store] url or NEWSLETTER_DATABASE_URL (host, port, database, user), "
                "PGPASSWORD or ~/.pgpass, and that the server is running"
            )
        return Check("store", "fail", str(err), fix, setting)
    where += health.where
    if health.pending and health.exists:
        names = ", ".join(health.pending)
        return Check(
            "store",
            "fail",
            f"{where}: {len(health.pending)} migration(s) not applied ({names})",
            "run `newsletter store migrate` once (from one host), then retry",
            setting,
        )
    if not health.exists or health.recipients == 0:
        found = "no store yet" if not health.exists else "nobody to send to"
        fix = "import your list: newsletter subscribers import people.csv"
        if health.postgres and not health.exists:
            found = "an empty database (set up on first use)"
            fix += "; or move a SQLite store there: newsletter store copy --to URL"
        return Check("store", "warn", f"{where}: {found}", fix, setting)
    n = health.recipients
    who = f"{n:,} {'person' if n == 1 else 'people'} to send to"
    return Check("store", "ok", f"{where}: {who}", "", setting)


def run_checks(
    settings: Settings,
    secrets: Secrets,
    *,
    transport: str,
    http_client: httpx.Client | None = None,
    store: bool = True,
) -> list[Check]:
    """Every check a send through ``transport`` depends on, local ones first.

    ``"auto"`` means SendGrid when an API key is set, as for ``send``. The store is looked at
    unless ``store`` is False (:func:`store_check`). The SendGrid checks run only for
    ``transport="sendgrid"`` with an API key; ``http_client`` (default: a new one with
    ``send.timeout_seconds``) makes their requests.
    """
    if transport == "auto":
        transport = "sendgrid" if secrets.sendgrid_api_key else "outbox"
    checks = list(local_checks(settings, secrets, transport=transport))
    if store:
        checks.append(store_check(settings))
    if not _real(transport) or not secrets.sendgrid_api_key:
        return checks
    if http_client is not None:
        return checks + sendgrid_checks(settings, secrets, http_client)
    import httpx

    with httpx.Client(timeout=settings.send.timeout_seconds) as client:
        return checks + sendgrid_checks(settings, secrets, client)


def summary(checks: Sequence[Check]) -> str:
    fails = sum(c.status == "fail" for c in checks)
    warns = sum(c.status == "warn" for c in checks)
    if fails:
        return (
            f"{fails} failed, {warns} warning(s): a real send refuses until the failures are fixed"
        )
    if warns:
        return f"ready to send, with {warns} warning(s)"
    return "ready to send"
