"""Transports: one small interface (:class:`newsletter.transports.base.Transport`)."""
