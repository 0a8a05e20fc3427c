"""Noticing content already in the vault: a keyed-digest (blind) index beside the records.

Each record's plaintext is digested, as it is encrypted, with HMAC-SHA-256 under the dedupe key
``DK`` = BLAKE2b-256(key = vault key, personalization = ``"hw-dedupe-mac-v1"``); SHA-256
rather than keyed BLAKE2b because the CPU's SHA extensions make it the cheaper pass. The
table ``content_index (record_id, tag)`` holds only these tags: without the vault key a copy
of the wallet home can neither read them nor confirm a guess of a record's content (a bare
hash could be confirmed by hashing a guess). Which records the user deliberately added twice
(``--allow-duplicate``) is the one thing equal tags tell, and their sizes already match.

The index is kept in the transaction that commits a record's row (``Gate.admit``). Records
added before it existed, after a key rotation (``DK`` follows the vault key) or adopted by
``restore --merge`` are indexed later by ``catch_up``: a little at a time by ``record add``,
all at once by ``doctor`` (docs/adr/0017-content-digest-index.md).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from typing import BinaryIO

from .errors import UsageError, VerificationError
from .vault import Vault

_MAC_CONTEXT = b"hw-dedupe-mac-v1"  # BLAKE2b personalization: at most 16 bytes
_KEY_ROW = "content_index_key"
CATCH_UP_BYTES = 64 * 1024 * 1024
"""Most plaintext `record add` reads to index older records before it adds (doctor: all)."""


class DuplicateError(UsageError):
    """The content is already a record (exit 2); names that record by id, never by content."""

    def __init__(
        self,
        existing_id: str,
        what: str = "the file",
        hint: str | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message or f"{what} is already in the wallet as record {existing_id}",
            hint
            or f"see it with `healthwallet record show {existing_id} --summary`; "
            "add it again anyway with --allow-duplicate",
        )
        self.existing_id = existing_id


def dedupe_key(vault_key: bytes) -> bytes:
    """``DK``: the key of the content digests, derived from the vault key."""
    return hashlib.blake2b(b"", key=vault_key, person=_MAC_CONTEXT, digest_size=32).digest()


def _new_digest(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def digest_stream(key: bytes, handle: BinaryIO) -> bytes:
    """The tag of everything ``handle`` still holds (read 1 MiB at a time)."""
    digest = _new_digest(key)
    while block := handle.read(1024 * 1024):
        digest.update(block)
    return digest.digest()


def _prepare(db: sqlite3.Connection, key: bytes) -> None:
    """Create the table, and empty it when its tags were made under another key (a rotation)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS content_index ( record_id TEXT PRIMARY KEY, tag BLOB NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS content_index_tag ON content_index (tag)")
    fingerprint = hashlib.blake2b(b"", key=key, digest_size=16).hexdigest()
    row = db.execute("SELECT value FROM vault_meta WHERE key=?", (_KEY_ROW,)).fetchone()
    if row is None or row[0] != fingerprint:
        db.execute("DELETE FROM content_index")
        db.execute("INSERT OR REPLACE INTO vault_meta VALUES (?, ?)", (_KEY_ROW, fingerprint))


def _find(db: sqlite3.Connection, tag: bytes) -> str | None:
    """The oldest live record whose content has this tag (rows of removed records are ignored)."""
    row = db.execute(
        "SELECT c.record_id FROM content_index c JOIN records r ON r.id = c.record_id"
        " WHERE c.tag = ? ORDER BY r.seq LIMIT 1",
        (tag,),
    ).fetchone()
    return None if row is None else str(row[0])


class Gate:
    """Digests a record's plaintext as it is encrypted; refuses it with DuplicateError when the
    same content is already a record, unless duplicates are allowed (then notes which)."""

    def __init__(self, vault_key: bytes, *, allow: bool = False, what: str = "the file") -> None:
        self._key = dedupe_key(vault_key)
        self._digest = _new_digest(self._key)
        self._allow = allow
        self._what = what
        self.duplicate_of: str | None = None

    def update(self, chunk: bytes) -> None:
        """See the next plaintext chunk."""
        self._digest.update(chunk)

    def admit(self, db: sqlite3.Connection, record_id: str) -> None:
        """Inside the record's transaction: refuse a duplicate, else index the record."""
        _prepare(db, self._key)
        tag = self._digest.digest()
        self.duplicate_of = _find(db, tag)
        if self.duplicate_of is not None and not self._allow:
            raise DuplicateError(self.duplicate_of, self._what)
        db.execute("INSERT OR REPLACE INTO content_index VALUES (?, ?)", (record_id, tag))


def find_duplicate(vault: Vault, vault_key: bytes, tag: bytes) -> str | None:
    """The record whose content has ``tag`` (from ``digest_stream(dedupe_key(…), …)``)."""
    with vault.index_writer() as db:
        _prepare(db, dedupe_key(vault_key))
        return _find(db, tag)


def catch_up(vault: Vault, vault_key: bytes, budget: int | None = CATCH_UP_BYTES) -> int:
    """Index records that have no tag yet, reading at most ``budget`` bytes of plaintext
    (None: all); returns how many are still not indexed. Damaged records are left to doctor."""
    key = dedupe_key(vault_key)
    with vault.index_writer() as db:
        _prepare(db, key)
        db.execute("DELETE FROM content_index WHERE record_id NOT IN (SELECT id FROM records)")
        missing = [
            str(row[0])
            for row in db.execute(
                "SELECT id FROM records WHERE id NOT IN (SELECT record_id FROM content_index)"
                " ORDER BY seq"
            )
        ]
        left = len(missing)
        spent = 0
        for record_id in missing:
            try:
                size = vault.get(record_id).size
                if budget is not None and spent + size > budget:
                    break
                with vault.open_plaintext(record_id) as plain:
                    tag = digest_stream(key, plain)
            except VerificationError:
                continue
            spent += size
            db.execute("INSERT OR REPLACE INTO content_index VALUES (?, ?)", (record_id, tag))
            left -= 1
    return left
