"""``python -m newsletter.fakes.sendgrid``: the recording fake SendGrid, under its old name.

The fake lives in :mod:`newsletter.providers.sendgrid.fake`; this entry point keeps the command
the README shows working.
"""

from newsletter.providers.sendgrid.fake import main

if __name__ == "__main__":
    raise SystemExit(main())
