"""The relay's link store: the interface, its records, and the SQL shared by its backends.

A store holds, per link: the owner DID, the SHL flag and expiry, the passcode's Argon2id hash
and the lifetime attempt budget, use limits, revocation; the link's files as ciphertext (compact
JWE, chunked so they stream); short-lived location tokens; the access log; and the nonces of
signed management requests. Nothing in it is plaintext health data: the key travels only in the
link. ``SqlStore`` holds every query once; ``sqlite_store`` and ``pg_store`` only connect.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

CHUNK_BYTES = 1 << 20
"""Ciphertext is stored, and streamed, in pieces of this size (1 MiB)."""


@dataclass(frozen=True)
class Link:
    """One SMART Health Link as the relay keeps it (no key, no label, no content)."""

    id: str
    owner: str
    flag: str
    exp: int | None
    passcode_hash: str | None
    attempts_left: int | None
    max_uses: int | None
    uses: int
    single_use_locations: bool
    revoked: bool
    created: int
    updated: int

    def usable(self, now: int) -> bool:
        """Whether the link may be resolved at ``now``: not revoked, expired or used up."""
        if self.revoked or (self.exp is not None and now >= self.exp):
            return False
        if self.passcode_hash is not None and (self.attempts_left or 0) <= 0:
            return False
        return self.max_uses is None or self.uses < self.max_uses


@dataclass(frozen=True)
class NewFile:
    """A file to store: its SHL content type and its compact-JWE ciphertext."""

    content_type: str
    ciphertext: bytes


@dataclass(frozen=True)
class StoredFile:
    """A stored file's metadata (its bytes come from ``LinkStore.chunks``)."""

    id: str
    link_id: str
    seq: int
    content_type: str
    size: int
    updated: int


@dataclass(frozen=True)
class AccessEntry:
    """One line of a link's access log: when, which ``recipient`` it named, and what happened."""

    at: int
    recipient: str
    outcome: str


class LinkStore(Protocol):
    """What the relay needs from its storage; every method is atomic on its own."""

    def create_link(
        self, link: Link, files: Sequence[NewFile], file_ids: Sequence[str], max_links: int
    ) -> bool:
        """Store a new link and its files; False (nothing stored) when the owner has
        ``max_links`` unrevoked links already."""
        ...

    def get_link(self, link_id: str) -> Link | None:
        """The link, or None."""
        ...

    def list_links(self, owner: str) -> list[Link]:
        """The owner's links, oldest first."""
        ...

    def revoke_link(self, link_id: str, owner: str, now: int) -> bool:
        """Revoke the owner's link and drop its files; False when it is not the owner's."""
        ...

    def replace_files(
        self, link_id: str, owner: str, files: Sequence[NewFile], file_ids: Sequence[str], now: int
    ) -> bool:
        """Swap the files of the owner's unrevoked link; False when there is no such link."""
        ...

    def take_attempt(self, link_id: str) -> int | None:
        """Spend one passcode attempt before checking it: the attempts left after this one,
        or None when none was left (atomic under concurrent callers)."""
        ...

    def refund_attempt(self, link_id: str) -> None:
        """Give back the attempt a correct passcode spent."""
        ...

    def take_use(self, link_id: str, now: int) -> bool:
        """Count one resolution; False when the link is revoked, expired at ``now`` or at its
        use limit (atomic: the last gate before files are handed out)."""
        ...

    def files(self, link_id: str) -> list[StoredFile]:
        """The link's files in order."""
        ...

    def chunks(self, file_id: str) -> Iterator[bytes]:
        """The file's ciphertext, one stored chunk at a time (each read on its own)."""
        ...

    def add_location(
        self, token: str, file_id: str, link_id: str, expires: int, single_use: bool
    ) -> None:
        """Record a location token for one file."""
        ...

    def take_location(self, token: str, now: int) -> tuple[str, str] | None:
        """(file id, link id) for an unexpired token, consuming it when single-use."""
        ...

    def log_access(self, link_id: str, at: int, recipient: str, outcome: str) -> None:
        """Append to the link's access log."""
        ...

    def access_log(self, link_id: str) -> list[AccessEntry]:
        """The link's access log, oldest first."""
        ...

    def nonce_seen(self, did: str, nonce: str, expires: int, now: int) -> bool:
        """Record a management request's nonce; True when it was recorded before (a replay)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# A constant column list (never input), formatted into the queries below.
_LINK_COLUMNS = (
    "id, owner, flag, exp, passcode_hash, attempts_left, max_uses, uses, "
    "single_use_locations, revoked, created, updated"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    flag TEXT NOT NULL,
    exp BIGINT,
    passcode_hash TEXT,
    attempts_left INTEGER,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    single_use_locations INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS links_owner ON links (owner);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    link_id TEXT NOT NULL REFERENCES links (id),
    seq INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_link ON files (link_id);
CREATE TABLE IF NOT EXISTS chunks (
    file_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (file_id, seq)
);
CREATE TABLE IF NOT EXISTS locations (
    token TEXT PRIMARY KEY,
    file_id TEXT NOT NULL,
    link_id TEXT NOT NULL,
    expires BIGINT NOT NULL,
    single_use INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_log (
    link_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    recipient TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_link ON access_log (link_id);
CREATE TABLE IF NOT EXISTS nonces (
    did TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (did, nonce)
);
"""


def _link(row: Sequence[Any]) -> Link:
    return Link(
        id=row[0],
        owner=row[1],
        flag=row[2],
        exp=row[3],
        passcode_hash=row[4],
        attempts_left=row[5],
        max_uses=row[6],
        uses=row[7],
        single_use_locations=bool(row[8]),
        revoked=bool(row[9]),
        created=row[10],
        updated=row[11],
    )


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses (sqlite3 and psycopg both fit)."""

    def execute(self, query: Any, params: Any = ..., /) -> Any:
        """Run one statement."""
        ...

    def fetchone(self) -> Any:
        """The next row or None."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...


class SqlStore:
    """Every query of the link store, written once; a backend supplies ``_open`` and ``_tx``.

    Each thread gets its own connection (the relay runs store calls in a thread pool).
    """

    placeholder = "?"

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._guard = threading.Lock()

    def _open(self) -> Any:
        """A new connection to the backend."""
        raise NotImplementedError

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _tx(self) -> contextlib.AbstractContextManager[Cursor]:
        """A cursor inside one transaction (committed on success, rolled back on error)."""
        raise NotImplementedError

    def _read(self) -> contextlib.AbstractContextManager[Cursor]:
        """A cursor for reads only (a backend may make it cheaper than ``_tx``)."""
        return self._tx()

    def _lock_owner(self, cur: Cursor, owner: str) -> None:
        """Serialise link creation per owner within the transaction (for the link limit)."""

    def _run(self, cur: Cursor, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cur.execute(sql.replace("?", self.placeholder), tuple(params))
        return cur

    def _store_files(
        self, cur: Cursor, link_id: str, files: Sequence[NewFile], ids: Sequence[str], now: int
    ) -> None:
        for seq, (item, file_id) in enumerate(zip(files, ids, strict=True)):
            size = len(item.ciphertext)
            self._run(
                cur,
                "INSERT INTO files (id, link_id, seq, content_type, size, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (file_id, link_id, seq, item.content_type, size, now),
            )
            for part, start in enumerate(range(0, size, CHUNK_BYTES)):
                chunk = item.ciphertext[start : start + CHUNK_BYTES]
                self._run(
                    cur,
                    "INSERT INTO chunks (file_id, seq, data) VALUES (?, ?, ?)",
                    (file_id, part, chunk),
                )

    def _drop_files(self, cur: Cursor, link_id: str) -> None:
        self._run(
            cur,
            "DELETE FROM chunks WHERE file_id IN (SELECT id FROM files WHERE link_id = ?)",
            (link_id,),
        )
        self._run(cur, "DELETE FROM files WHERE link_id = ?", (link_id,))
        self._run(cur, "DELETE FROM locations WHERE link_id = ?", (link_id,))

    def create_link(
        self, link: Link, files: Sequence[NewFile], file_ids: Sequence[str], max_links: int
    ) -> bool:
        """See LinkStore.create_link."""
        with self._tx() as cur:
            self._lock_owner(cur, link.owner)
            row = self._run(
                cur, "SELECT COUNT(*) FROM links WHERE owner = ? AND revoked = 0", (link.owner,)
            ).fetchone()
            if row[0] >= max_links:
                return False
            self._run(
                cur,
                f"INSERT INTO links ({_LINK_COLUMNS}) VALUES ({', '.join('?' * 12)})",  # noqa: S608
                (
                    link.id,
                    link.owner,
                    link.flag,
                    link.exp,
                    link.passcode_hash,
                    link.attempts_left,
                    link.max_uses,
                    link.uses,
                    int(link.single_use_locations),
                    int(link.revoked),
                    link.created,
                    link.updated,
                ),
            )
            self._store_files(cur, link.id, files, file_ids, link.created)
        return True

    def get_link(self, link_id: str) -> Link | None:
        """See LinkStore.get_link."""
        with self._read() as cur:
            row = self._run(
                cur,
                f"SELECT {_LINK_COLUMNS} FROM links WHERE id = ?",  # noqa: S608
                (link_id,),
            ).fetchone()
        return _link(row) if row else None

    def list_links(self, owner: str) -> list[Link]:
        """See LinkStore.list_links."""
        with self._read() as cur:
            rows = self._run(
                cur,
                f"SELECT {_LINK_COLUMNS} FROM links WHERE owner = ? ORDER BY created, id",  # noqa: S608
                (owner,),
            ).fetchall()
        return [_link(row) for row in rows]

    def revoke_link(self, link_id: str, owner: str, now: int) -> bool:
        """See LinkStore.revoke_link."""
        with self._tx() as cur:
            row = self._run(
                cur,
                "UPDATE links SET revoked = 1, updated = ? WHERE id = ? AND owner = ? RETURNING id",
                (now, link_id, owner),
            ).fetchone()
            if row is None:
                return False
            self._drop_files(cur, link_id)
        return True

    def replace_files(
        self, link_id: str, owner: str, files: Sequence[NewFile], file_ids: Sequence[str], now: int
    ) -> bool:
        """See LinkStore.replace_files."""
        with self._tx() as cur:
            row = self._run(
                cur,
                "UPDATE links SET updated = ? WHERE id = ? AND owner = ? AND revoked = 0 "
                "RETURNING id",
                (now, link_id, owner),
            ).fetchone()
            if row is None:
                return False
            self._drop_files(cur, link_id)
            self._store_files(cur, link_id, files, file_ids, now)
        return True

    def take_attempt(self, link_id: str) -> int | None:
        """See LinkStore.take_attempt: one statement, so the budget holds under concurrency."""
        with self._tx() as cur:
            row = self._run(
                cur,
                "UPDATE links SET attempts_left = attempts_left - 1 "
                "WHERE id = ? AND attempts_left > 0 RETURNING attempts_left",
                (link_id,),
            ).fetchone()
        return None if row is None else int(row[0])

    def refund_attempt(self, link_id: str) -> None:
        """See LinkStore.refund_attempt."""
        with self._tx() as cur:
            self._run(
                cur, "UPDATE links SET attempts_left = attempts_left + 1 WHERE id = ?", (link_id,)
            )

    def take_use(self, link_id: str, now: int) -> bool:
        """See LinkStore.take_use."""
        with self._tx() as cur:
            row = self._run(
                cur,
                "UPDATE links SET uses = uses + 1 WHERE id = ? AND revoked = 0 "
                "AND (exp IS NULL OR exp > ?) AND (max_uses IS NULL OR uses < max_uses) "
                "RETURNING uses",
                (link_id, now),
            ).fetchone()
        return row is not None

    def files(self, link_id: str) -> list[StoredFile]:
        """See LinkStore.files."""
        with self._tx() as cur:
            rows = self._run(
                cur,
                "SELECT id, link_id, seq, content_type, size, updated FROM files "
                "WHERE link_id = ? ORDER BY seq",
                (link_id,),
            ).fetchall()
        return [StoredFile(*row) for row in rows]

    def chunks(self, file_id: str) -> Iterator[bytes]:
        """See LinkStore.chunks."""
        part = 0
        while True:
            with self._tx() as cur:
                row = self._run(
                    cur, "SELECT data FROM chunks WHERE file_id = ? AND seq = ?", (file_id, part)
                ).fetchone()
            if row is None:
                return
            yield bytes(row[0])
            part += 1

    def add_location(
        self, token: str, file_id: str, link_id: str, expires: int, single_use: bool
    ) -> None:
        """See LinkStore.add_location."""
        with self._tx() as cur:
            self._run(
                cur,
                "INSERT INTO locations (token, file_id, link_id, expires, single_use) "
                "VALUES (?, ?, ?, ?, ?)",
                (token, file_id, link_id, expires, int(single_use)),
            )

    def take_location(self, token: str, now: int) -> tuple[str, str] | None:
        """See LinkStore.take_location: a single-use token is deleted as it is read."""
        with self._tx() as cur:
            self._run(cur, "DELETE FROM locations WHERE expires <= ?", (now,))
            row = self._run(
                cur,
                "DELETE FROM locations WHERE token = ? AND single_use = 1 "
                "RETURNING file_id, link_id",
                (token,),
            ).fetchone()
            if row is None:
                row = self._run(
                    cur, "SELECT file_id, link_id FROM locations WHERE token = ?", (token,)
                ).fetchone()
        return None if row is None else (row[0], row[1])

    def log_access(self, link_id: str, at: int, recipient: str, outcome: str) -> None:
        """See LinkStore.log_access."""
        with self._tx() as cur:
            self._run(
                cur,
                "INSERT INTO access_log (link_id, at, recipient, outcome) VALUES (?, ?, ?, ?)",
                (link_id, at, recipient, outcome),
            )

    def access_log(self, link_id: str) -> list[AccessEntry]:
        """See LinkStore.access_log."""
        with self._tx() as cur:
            rows = self._run(
                cur,
                "SELECT at, recipient, outcome FROM access_log WHERE link_id = ? ORDER BY at",
                (link_id,),
            ).fetchall()
        return [AccessEntry(*row) for row in rows]

    def nonce_seen(self, did: str, nonce: str, expires: int, now: int) -> bool:
        """See LinkStore.nonce_seen; expired nonces are dropped on the way."""
        with self._tx() as cur:
            self._run(cur, "DELETE FROM nonces WHERE expires < ?", (now,))
            row = self._run(
                cur,
                "INSERT INTO nonces (did, nonce, expires) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING RETURNING nonce",
                (did, nonce, expires),
            ).fetchone()
        return row is None
