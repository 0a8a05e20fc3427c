"""The relay's shared link store: PostgreSQL (psycopg 3), so several relays serve one store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from .grantstore import grant_schema
from .store import SCHEMA, Cursor, SqlStore

CONNECT_TIMEOUT = 10


class PostgresStore(SqlStore):
    """A LinkStore in a PostgreSQL database; one connection per thread."""

    placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        with self._tx() as cur:
            # Several relays may start at once against an empty database.
            cur.execute("SELECT pg_advisory_xact_lock(7265)")
            for statement in SCHEMA.format(blob="BYTEA").split(";"):
                if statement.strip():
                    cur.execute(statement.encode())
            for statement in grant_schema("BYTEA"):
                cur.execute(statement.encode())

    def _open(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Cursor]:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def _lock_owner(self, cur: Cursor, owner: str) -> None:
        self._run(cur, "SELECT pg_advisory_xact_lock(hashtext(?))", (owner,))
