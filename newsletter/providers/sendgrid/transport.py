"""The SendGrid transport: one v3 ``mail/send`` request per batch, through the official library.

The rendered issue goes once as ``content``; each recipient is one personalization with their
``substitutions`` (the tokens of :mod:`newsletter.personalize`), their own ``List-Unsubscribe``
headers and ``custom_args`` (campaign id, recipient id) that come back in webhook events.

Every documented limit is checked before a request is made (:func:`check_limits`). HTTP
answers are translated by :mod:`newsletter.providers.sendgrid.http_errors`; connection failures
here:

    refused before send        -> ProviderUnavailable   (the dispatcher retries)
    timeout / dropped after    -> DeliveryUnknown       (maybe accepted: never resent silently)

The library opens a new connection per call; :class:`KeepAliveClient` keeps one HTTP connection
per thread instead (same request building and error classes, ``keep_alive=False`` to compare).
python_http_client has no public hook for the connection, so it overrides ``_make_request`` (the
method the library keeps separate "so we can mock it easily") and ``_build_client``. That is a
seam into private code: pyproject.toml pins ``sendgrid`` and ``python-http-client`` to the exact
versions it was tested with, and tests/test_sendgrid_seam.py fails when either changes.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import python_http_client
import sendgrid
from python_http_client.exceptions import HTTPError, err_dict

from newsletter.errors import DeliveryUnknown, ProviderUnavailable
from newsletter.providers.sendgrid.http_errors import translate
from newsletter.providers.sendgrid.payload import (
    MAX_BODY_BYTES,
    MAX_RECIPIENTS,
    build_body,
    build_payload,
    check_limits,
)
from newsletter.transports.base import Batch, BatchResult, Outcome, Status

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_RECIPIENTS",
    "KeepAliveClient",
    "SendGridTransport",
    "build_body",
    "build_payload",
    "check_limits",
]

_IDLE_RECONNECT_SECONDS = 4.0  # servers close idle keep-alive connections; do not reuse stale ones


class _AnswerLost(OSError):
    """The request was written; the connection failed before a complete answer."""


class _NotSent(urllib.error.URLError):
    """The connection failed before the request was completely written: safe to retry."""


class _Answer:
    """What :class:`python_http_client.client.Response` reads from an opener's result."""

    def __init__(self, status: int, body: bytes, headers: http.client.HTTPMessage) -> None:
        self._status, self._body, self._headers = status, body, headers

    def getcode(self) -> int:
        return self._status

    def read(self) -> bytes:
        return self._body

    def info(self) -> http.client.HTTPMessage:
        return self._headers


class _Body(str):
    """A request body that python_http_client cannot spell out in its debug log.

    The library formats every payload into a ``logger.debug`` message whether or not debug is
    on: for a 1000-recipient batch that is half a megabyte of ``repr`` per request, and the text
    holds every address and unsubscribe token. ``encode`` (which the library calls) gives bytes
    that format as their size instead.
    """

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> _BodyBytes:
        return _BodyBytes(str.encode(self, encoding, errors))


class _BodyBytes(bytes):
    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return f"<{len(self)} bytes of JSON>"


class _RedactKey(logging.Filter):
    """python_http_client logs every request's headers at debug level, API key included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "Bearer " in record.msg:
            record.msg = _BEARER.sub("Bearer [redacted]", record.msg)
        return True


_BEARER = re.compile(r"Bearer [^'\"\s,}]+")
_LIBRARY_LOG = logging.getLogger(python_http_client.client.__name__)
_LIBRARY_LOG.addFilter(_RedactKey())


class _Pool:
    """One HTTP connection per thread, all closable from any thread."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.open: set[http.client.HTTPConnection] = set()

    def get(
        self, url: urllib.parse.SplitResult, timeout: float | None
    ) -> http.client.HTTPConnection:
        state = self.local.__dict__
        conn = state.get("conn")
        if conn is not None and (
            state.get("netloc") != url.netloc
            or time.monotonic() - state.get("used", 0.0) > _IDLE_RECONNECT_SECONDS
        ):
            self.drop()
            conn = None
        if conn is None:
            if url.scheme == "https":
                conn = http.client.HTTPSConnection(url.netloc, timeout=timeout)
            else:
                conn = http.client.HTTPConnection(url.netloc, timeout=timeout)
            state["conn"], state["netloc"] = conn, url.netloc
            with self.lock:
                self.open.add(conn)
        return conn

    def used(self) -> None:
        self.local.__dict__["used"] = time.monotonic()

    def drop(self) -> None:
        conn = self.local.__dict__.pop("conn", None)
        if conn is not None:
            conn.close()
            with self.lock:
                self.open.discard(conn)

    def close_all(self) -> None:
        with self.lock:
            conns, self.open = self.open, set()
        for conn in conns:
            conn.close()


class KeepAliveClient(python_http_client.Client):
    """python_http_client's Client with one persistent connection per thread."""

    def __init__(self, *args: Any, pool: _Pool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = pool if pool is not None else _Pool()

    def _build_client(self, name: str | None = None) -> KeepAliveClient:
        url_path = [*self._url_path, name] if name else self._url_path
        return KeepAliveClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            pool=self.pool,
        )

    def _make_request(
        self, opener: Any, request: urllib.request.Request, timeout: float | None = None
    ) -> _Answer:
        timeout = timeout or self.timeout
        url = urllib.parse.urlsplit(request.full_url)
        path = url.path + (f"?{url.query}" if url.query else "")
        conn = self.pool.get(url, timeout)
        try:
            if conn.sock is None:
                conn.connect()
            conn.request(request.get_method(), path, body=request.data, headers=request.headers)
        except OSError as err:  # nothing complete reached the server
            self.pool.drop()
            raise _NotSent(err) from err
        try:
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as err:
            self.pool.drop()
            raise _AnswerLost(str(err) or type(err).__name__) from err
        self.pool.used()
        if response.will_close:
            self.pool.drop()
        if response.status >= 400:
            cls = err_dict.get(response.status, HTTPError)
            raise cls(response.status, response.reason, body, response.msg)
        return _Answer(response.status, body, response.msg)


class SendGridTransport:
    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        api_url: str = "https://api.sendgrid.com",
        timeout: float = 30.0,
        keep_alive: bool = True,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._sg = sendgrid.SendGridAPIClient(api_key=api_key, host=api_url)
        if keep_alive:
            self._sg.client = KeepAliveClient(
                host=api_url, request_headers=dict(self._sg.client.request_headers), version=3
            )
        self._sg.client.timeout = timeout
        # the body is JSON text we built (see sendgrid_payload); any Content-Type other than the
        # bare "application/json" makes the library send a str as is instead of json.dumps-ing it
        self._sg.client.request_headers["Content-Type"] = "application/json; charset=utf-8"
        self._send = self._sg.client.mail.send
        self._now = now

    def send(self, batch: Batch) -> BatchResult:
        request = build_body(batch, now=self._now())
        if request.body is None:  # every recipient was left out: nothing to send
            return BatchResult(request.rejected)
        response = self.post(request.body)
        headers = response.headers
        message_id = (headers.get("X-Message-Id") or "") if headers is not None else ""
        accepted = Status.ACCEPTED
        if request.rejected:
            left_out = {o.email for o in request.rejected}
            people = [r.email for r in batch.recipients if r.email not in left_out]
        else:
            people = [r.email for r in batch.recipients]
        return BatchResult(
            [Outcome(email, accepted, "", message_id) for email in people] + request.rejected,
            provider_message_id=message_id,
        )

    def post(self, payload: str | dict[str, Any]) -> Any:
        """POST one mail/send request; translate every failure to a newsletter error."""
        body = _Body(payload if isinstance(payload, str) else json.dumps(payload))
        try:
            return self._send.post(request_body=body)
        except HTTPError as err:
            raise self._translate(err, "POST /v3/mail/send") from err
        except _AnswerLost as err:
            raise DeliveryUnknown(
                f"the connection failed after the request was sent ({err}); it may have been "
                "accepted"
            ) from err
        except _NotSent as err:
            raise ProviderUnavailable(f"cannot reach SendGrid ({err.reason})") from err
        except TimeoutError as err:
            raise DeliveryUnknown(
                "no answer before the timeout; it may have been accepted"
            ) from err
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, ConnectionRefusedError | OSError) and not isinstance(
                reason, TimeoutError | ConnectionResetError | http.client.RemoteDisconnected
            ):
                raise ProviderUnavailable(f"cannot reach SendGrid ({reason})") from err
            raise DeliveryUnknown(
                f"the connection failed during the request ({reason}); it may have been accepted"
            ) from err
        except (OSError, http.client.HTTPException) as err:
            raise DeliveryUnknown(
                f"the connection failed ({err}); it may have been accepted"
            ) from err

    def create_batch(self) -> str:
        """A new batch id (``POST /v3/mail/batch``).

        Every request of a scheduled campaign carries it, so :meth:`cancel_scheduled` can stop
        them all before their ``send_at``.
        """
        response = self._call(self._sg.client.mail.batch, None, "POST /v3/mail/batch")
        try:
            batch_id = json.loads(response.body or b"{}").get("batch_id")
        except (ValueError, AttributeError):
            batch_id = None
        if not isinstance(batch_id, str) or not batch_id:
            raise ProviderUnavailable("SendGrid answered POST /v3/mail/batch without a batch_id")
        return batch_id

    def cancel_scheduled(self, batch_id: str) -> None:
        """Cancel every send scheduled with ``batch_id`` (``POST /v3/user/scheduled_sends``)."""
        self._call(
            self._sg.client.user.scheduled_sends,
            {"batch_id": batch_id, "status": "cancel"},
            "POST /v3/user/scheduled_sends",
        )

    def _call(self, endpoint: Any, payload: dict[str, Any] | None, what: str) -> Any:
        """POST to another endpoint than mail/send; any failure is safe to try again."""
        body = None if payload is None else _Body(json.dumps(payload))
        try:
            return endpoint.post(request_body=body)
        except HTTPError as err:
            raise self._translate(err, what) from err
        except (OSError, urllib.error.URLError, http.client.HTTPException) as err:
            why = f"cannot reach SendGrid for {what} ({err}); try again"
            raise ProviderUnavailable(why) from err

    def _translate(self, err: HTTPError, what: str) -> Exception:
        return translate(int(err.status_code), err.body, err.headers, what=what, now=self._now())

    def close(self) -> None:
        client = self._sg.client
        if isinstance(client, KeepAliveClient):
            client.pool.close_all()
