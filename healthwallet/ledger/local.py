"""The embedded default ledger: an append-only, hash-chained, signed log in SQLite.

Each entry holds the root, the time, the hash of the previous entry and the
wallet's Ed25519 signature. Walking the chain detects a changed, removed or
reordered entry. The log lives in ``<home>/ledger-local.sqlite``. It proves what
this wallet committed to and when (by its own clock), nothing more: whoever holds
the seed could rewrite it, which is what the ``ethereum`` backend is for.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import BadInputError, KeystoreError, StorageError, UsageError, VerificationError
from ..keys import ed25519_from_did, verify_signature
from .base import (
    LedgerContext,
    LookupResult,
    Receipt,
    format_time,
    open_private_db,
    parse_hash_hex,
    parse_time,
)

LOG_FILE = "ledger-local.sqlite"
ENTRY_VERSION = 1
GENESIS_PREV = "00" * 32
# Domain separation: an entry signature can never be mistaken for another signed object.
_ENTRY_DOMAIN = b"healthwallet/local-ledger/entry/v1\n"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    prev TEXT NOT NULL,
    root TEXT NOT NULL,
    time TEXT NOT NULL,
    signer TEXT NOT NULL,
    signature TEXT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_root ON entries(root);
"""


@dataclass(frozen=True)
class LogEntry:
    """One local ledger entry (format: docs/anchoring.md, local log entry v1)."""

    seq: int
    prev: str
    root: str
    time: str
    signer: str
    signature: str
    entry_hash: str

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "v": ENTRY_VERSION,
            "seq": self.seq,
            "prev": self.prev,
            "root": self.root,
            "time": self.time,
            "signer": self.signer,
        }

    def to_json(self) -> dict[str, Any]:
        """The entry with its hash and signature, as carried in receipts."""
        return {**self.body(), "signature": self.signature, "entry_hash": self.entry_hash}


def entry_message(body: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed and signed for an entry body: domain || canonical JSON."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _ENTRY_DOMAIN + canonical.encode("ascii")


def entry_problem(entry: LogEntry) -> str | None:
    """What is wrong with one entry on its own (hash, signature), or None."""
    message = entry_message(entry.body())
    if hashlib.sha256(message).hexdigest() != entry.entry_hash:
        return f"local ledger entry {entry.seq}: content does not match its hash"
    try:
        public_key = ed25519_from_did(entry.signer)
        signature = bytes.fromhex(entry.signature)
    except (UsageError, ValueError):
        return f"local ledger entry {entry.seq}: signer or signature is malformed"
    if not verify_signature(public_key, message, signature):
        return f"local ledger entry {entry.seq}: signature is not valid"
    return None


def entry_from_json(value: object) -> LogEntry:
    """Read an entry dict (as found in a receipt); BadInputError if malformed."""
    if not isinstance(value, Mapping) or value.get("v") != ENTRY_VERSION:
        raise BadInputError("not a v1 local ledger entry")
    try:
        entry = LogEntry(
            seq=int(value["seq"]),
            prev=str(value["prev"]),
            root=str(value["root"]),
            time=str(value["time"]),
            signer=str(value["signer"]),
            signature=str(value["signature"]),
            entry_hash=str(value["entry_hash"]),
        )
    except (KeyError, TypeError, ValueError):
        raise BadInputError("local ledger entry is missing fields") from None
    return entry


class LocalLedger:
    """Hash-chained, wallet-signed log of roots in the wallet home."""

    name = "local"

    def __init__(self, ctx: LedgerContext) -> None:
        self._ctx = ctx
        self.path: Path = ctx.home / LOG_FILE

    def _connect(self) -> sqlite3.Connection:
        conn = open_private_db(self.path)
        try:
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot open the local ledger ({type(exc).__name__})") from exc
        return conn

    def entries(self) -> list[LogEntry]:
        """Every entry in sequence order, as stored (unverified)."""
        conn = self._connect()
        try:
            return _read_entries(conn)
        finally:
            conn.close()

    def verify_log(self) -> list[LogEntry]:
        """Check the whole chain; VerificationError naming the first bad entry."""
        conn = self._connect()
        try:
            entries = _read_entries(conn)
        finally:
            conn.close()
        self._check_chain(entries)
        return entries

    def _check_chain(self, entries: list[LogEntry]) -> None:
        expected_signer = self._ctx.identity.did if self._ctx.identity is not None else None
        prev = GENESIS_PREV
        for position, entry in enumerate(entries, start=1):
            if entry.seq != position:
                missing = position if entry.seq > position else entry.seq
                raise VerificationError(f"local ledger entry {missing}: missing or out of order")
            problem = entry_problem(entry)
            if problem:
                raise VerificationError(problem)
            if entry.prev != prev:
                raise VerificationError(
                    f"local ledger entry {entry.seq}: does not chain to entry {entry.seq - 1}"
                )
            if expected_signer is not None and entry.signer != expected_signer:
                raise VerificationError(
                    f"local ledger entry {entry.seq}: signed by another key than this wallet's"
                )
            prev = entry.entry_hash

    def publish(self, root: bytes) -> Receipt:
        """Append ``root`` as a signed entry (or return the entry already holding it)."""
        identity = self._ctx.identity
        if identity is None:
            raise KeystoreError("the local ledger needs the wallet identity to sign entries")
        root_hex = root.hex()
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            entries = _read_entries(conn)
            self._check_chain(entries)
            for existing in entries:
                if existing.root == root_hex:
                    conn.execute("ROLLBACK")
                    return _receipt(existing)
            seq = len(entries) + 1
            prev = entries[-1].entry_hash if entries else GENESIS_PREV
            unsigned = LogEntry(
                seq, prev, root_hex, format_time(self._ctx.now()), identity.did, "", ""
            )
            message = entry_message(unsigned.body())
            entry = replace(
                unsigned,
                signature=identity.sign(message).hex(),
                entry_hash=hashlib.sha256(message).hexdigest(),
            )
            conn.execute(
                "INSERT INTO entries (seq, prev, root, time, signer, signature, entry_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.seq,
                    entry.prev,
                    entry.root,
                    entry.time,
                    entry.signer,
                    entry.signature,
                    entry.entry_hash,
                ),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(f"cannot write the local ledger ({type(exc).__name__})") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        return _receipt(entry)

    def lookup(self, receipt: Receipt) -> LookupResult:
        """Root and time of the entry ``receipt`` names; VerificationError if the log changed."""
        if receipt.ledger != self.name:
            return LookupResult(None, None, 0, False, f"receipt is for ledger {receipt.ledger!r}")
        try:
            seq = int(receipt.details["seq"])
            entry_hash = str(receipt.details["entry_hash"])
        except (KeyError, TypeError, ValueError):
            return LookupResult(None, None, 0, False, "receipt does not name a local ledger entry")
        entries = self.verify_log()
        if not 1 <= seq <= len(entries):
            raise VerificationError(f"local ledger entry {seq}: missing")
        entry = entries[seq - 1]
        if entry.entry_hash != entry_hash:
            raise VerificationError(f"local ledger entry {seq}: does not match the receipt")
        anchored_at: datetime | None = parse_time(entry.time)
        confirmations = len(entries) - seq + 1
        return LookupResult(
            parse_hash_hex(entry.root, "ledger root"), anchored_at, confirmations, True
        )


def _read_entries(conn: sqlite3.Connection) -> list[LogEntry]:
    rows = conn.execute(
        "SELECT seq, prev, root, time, signer, signature, entry_hash FROM entries ORDER BY seq"
    ).fetchall()
    return [LogEntry(int(r[0]), *(str(v) for v in r[1:])) for r in rows]


def _receipt(entry: LogEntry) -> Receipt:
    return Receipt(
        ledger=LocalLedger.name,
        root=bytes.fromhex(entry.root),
        details={"seq": entry.seq, "entry_hash": entry.entry_hash, "entry": entry.to_json()},
    )
