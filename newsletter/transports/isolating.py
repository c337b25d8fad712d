"""Send a batch so that recipients the provider refuses cost only themselves.

:func:`send_isolating` is shared by every sender of batches (a campaign's dispatcher, the
sign-up confirmation emails): it makes only transport calls, so it sits beside the transport
interface, below both.
"""

from __future__ import annotations

import dataclasses
import json
import re

from newsletter.errors import DeliveryUnknown, ProviderRejected, TransportError
from newsletter.transports.base import Batch, BatchResult, Outcome, Status, Transport


def about_recipients(err: ProviderRejected) -> bool:
    """Whether a refusal is about the recipients (so splitting the batch can isolate them):
    a 413 (too large), or a 400 whose errors name a ``personalizations.N...`` field. A 400
    about the sender or the content would refuse every half too: it is not split."""
    if err.status == 413:
        return True
    if err.status != 400:
        return False
    try:
        errors = json.loads(err.body).get("errors", [])
    except (ValueError, AttributeError):
        return False
    return any(
        isinstance(e, dict) and re.match(r"personalizations\.\d+", str(e.get("field") or ""))
        for e in errors
    )


def send_isolating(transport: Transport, batch: Batch) -> BatchResult:
    """Send a batch; if the provider refuses it for its content (400, 413), split it in halves
    and send each, down to the recipients it refuses alone.

    One bad address (or one oversized personalization) then costs its own recipient, not the
    999 others: about 2 x log2(1000) = 20 extra requests. The refused recipients come back as
    ``REJECTED`` outcomes with the provider's words; the others as the halves' outcomes.

    Runs in a worker thread: only transport calls, no store. A half that fails otherwise
    (5xx, a lost answer) stops the split: halves already accepted would be sent twice if the
    whole batch were retried, so the batch is reported as a lost answer (``unknown``) instead.
    """
    try:
        return transport.send(batch)
    except ProviderRejected as err:
        if not about_recipients(err):
            raise
        if len(batch.recipients) == 1:
            email = batch.recipients[0].email
            return BatchResult([Outcome(email, Status.REJECTED, err.format())])
        first = err
    outcomes: list[Outcome] = []
    message_ids: list[str] = []
    recipients = list(batch.recipients)
    halves = (recipients[: len(recipients) // 2], recipients[len(recipients) // 2 :])
    try:
        for half in halves:
            part = send_isolating(transport, dataclasses.replace(batch, recipients=half))
            outcomes.extend(part.outcomes)
            if part.provider_message_id:
                message_ids.append(part.provider_message_id)
    except TransportError as err:
        if not outcomes:
            raise  # nothing went out yet: the whole batch is safe to retry
        raise DeliveryUnknown(
            f"the batch was refused ({first.format()}); while isolating the refused "
            f"recipients, part of it was accepted and then {err.format()}"
        ) from err
    return BatchResult(outcomes, ",".join(message_ids))
