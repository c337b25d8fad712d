"""Subscribers and suppressions (issue #4)."""

from __future__ import annotations

import sqlite3

from newsletter.store.db import Migration

MIGRATIONS: list[Migration] = []


class AudienceStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
