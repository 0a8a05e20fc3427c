"""The grant relay's storage: relayed grant files and their single-use challenges (SQL once)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .store import SqlStore

GRANT_SCHEMA = """
CREATE TABLE IF NOT EXISTS relayed_grants (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    recipient TEXT NOT NULL,
    exp BIGINT NOT NULL,
    status_entry TEXT NOT NULL,
    data {blob} NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS relayed_grants_owner ON relayed_grants (owner);
CREATE TABLE IF NOT EXISTS grant_challenges (
    nonce TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    expires BIGINT NOT NULL
);
"""

_COLUMNS = "id, owner, recipient, exp, status_entry, created"


@dataclass(frozen=True)
class RelayedGrant:
    """A grant file as the relay keeps it: who uploaded it, for whom, until when, its status."""

    id: str
    owner: str
    recipient: str
    exp: int
    status_entry: str  # the credential's credentialStatus, as JSON
    created: int


def _grant(row: Sequence[Any]) -> RelayedGrant:
    return RelayedGrant(row[0], row[1], row[2], row[3], row[4], row[5])


def grant_schema(blob: str) -> list[str]:
    """The statements creating the grant relay's tables (each backend runs them after its own)."""
    return [s for s in GRANT_SCHEMA.format(blob=blob).split(";") if s.strip()]


class GrantStore:
    """The grant relay's queries over one ``SqlStore`` (its connections and transactions)."""

    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    def add(self, grant: RelayedGrant, data: bytes, max_grants: int) -> bool:
        """Store a grant; False (nothing stored) when its owner holds ``max_grants`` already."""
        sql = self.sql
        with sql._tx() as cur:
            sql._lock_owner(cur, grant.owner)
            row = sql._run(
                cur, "SELECT COUNT(*) FROM relayed_grants WHERE owner = ?", (grant.owner,)
            ).fetchone()
            if row[0] >= max_grants:
                return False
            sql._run(
                cur,
                f"INSERT INTO relayed_grants ({_COLUMNS}, data) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    grant.id,
                    grant.owner,
                    grant.recipient,
                    grant.exp,
                    grant.status_entry,
                    grant.created,
                    data,
                ),
            )
        return True

    def get(self, grant_id: str) -> RelayedGrant | None:
        """The relayed grant, or None."""
        with self.sql._read() as cur:
            row = self.sql._run(
                cur,
                f"SELECT {_COLUMNS} FROM relayed_grants WHERE id = ?",  # noqa: S608
                (grant_id,),
            ).fetchone()
        return _grant(row) if row else None

    def data(self, grant_id: str) -> bytes | None:
        """The grant file's bytes, or None."""
        with self.sql._read() as cur:
            row = self.sql._run(
                cur, "SELECT data FROM relayed_grants WHERE id = ?", (grant_id,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, grant_id: str, owner: str) -> bool:
        """Drop the owner's grant and its challenges; False when it is not the owner's."""
        with self.sql._tx() as cur:
            row = self.sql._run(
                cur,
                "DELETE FROM relayed_grants WHERE id = ? AND owner = ? RETURNING id",
                (grant_id, owner),
            ).fetchone()
            self.sql._run(cur, "DELETE FROM grant_challenges WHERE grant_id = ?", (grant_id,))
        return row is not None

    def add_challenge(self, nonce: str, grant_id: str, expires: int, now: int) -> None:
        """Record a fresh challenge for one grant (expired ones are dropped on the way)."""
        with self.sql._tx() as cur:
            self.sql._run(cur, "DELETE FROM grant_challenges WHERE expires <= ?", (now,))
            self.sql._run(
                cur,
                "INSERT INTO grant_challenges (nonce, grant_id, expires) VALUES (?, ?, ?)",
                (nonce, grant_id, expires),
            )

    def take_challenge(self, nonce: str, grant_id: str, now: int) -> bool:
        """Consume a challenge: True once, for an unexpired nonce issued for this grant."""
        with self.sql._tx() as cur:
            row = self.sql._run(
                cur,
                "DELETE FROM grant_challenges WHERE nonce = ? AND grant_id = ? AND expires > ? "
                "RETURNING nonce",
                (nonce, grant_id, now),
            ).fetchone()
        return row is not None
