"""The relay's default link store: one embedded SQLite file (WAL), one connection per thread."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .grantstore import grant_schema
from .store import SCHEMA, Cursor, SqlStore

BUSY_TIMEOUT_MS = 10_000


class SqliteStore(SqlStore):
    """A LinkStore in one SQLite database file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        with self._tx() as cur:
            for statement in SCHEMA.format(blob="BLOB").split(";"):
                if statement.strip():
                    cur.execute(statement)
            for statement in grant_schema("BLOB"):
                cur.execute(statement)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _tx(self) -> contextlib.AbstractContextManager[Cursor]:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> contextlib.AbstractContextManager[Cursor]:
        return self._transaction("BEGIN")

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[Cursor]:
        conn = self._connection()
        cur = conn.cursor()
        cur.execute(begin)
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cur.close()
