"""Everything that talks SendGrid, in one package.

    transport.py         mail/send, batch ids and scheduled-send cancels (the ``sendgrid`` library)
    payload.py           one batch -> the v3 JSON body, every documented limit checked first
    http_errors.py       the one translator of SendGrid's HTTP answers, the one Retry-After /
                         X-RateLimit-Reset parser
    suppression_sync.py  SendGrid's suppression lists -> the local list
    webhooks.py          Event Webhook: signature check, parsing, what each event means
    fake.py              the recording fake SendGrid (a real HTTP server) with failure injection

Import the module you need; this package imports nothing itself, so the web app can load the
webhook code without the HTTP client libraries.
"""
