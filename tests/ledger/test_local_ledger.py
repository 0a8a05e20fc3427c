"""The local ledger: a hash-chained, signed, append-only log in SQLite."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from healthwallet.errors import KeystoreError, VerificationError
from healthwallet.keys import Identity
from healthwallet.ledger.base import LedgerContext, Receipt
from healthwallet.ledger.local import LOG_FILE, LocalLedger

from .conftest import FIXED_NOW

ROOTS = [bytes([i]) * 32 for i in range(1, 5)]


def filled(ctx: LedgerContext) -> tuple[LocalLedger, list[Receipt]]:
    ledger = LocalLedger(ctx)
    return ledger, [ledger.publish(root) for root in ROOTS]


@contextmanager
def db(home: Path) -> Iterator[sqlite3.Connection]:
    """Open the log directly, as an attacker with file access would."""
    conn = sqlite3.connect(home / LOG_FILE, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def test_publish_and_lookup(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    assert [r.details["seq"] for r in receipts] == [1, 2, 3, 4]
    result = ledger.lookup(receipts[1])
    assert result.root == ROOTS[1]
    assert result.confirmed and result.problem is None
    assert result.anchored_at == FIXED_NOW
    assert result.confirmations == 3  # entries 2, 3 and 4 stand on it
    entries = ledger.verify_log()
    assert entries[1].prev == entries[0].entry_hash
    assert entries[0].signer == local_ctx.identity.did  # type: ignore[union-attr]


def test_publish_is_idempotent_per_root(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    assert ledger.publish(ROOTS[2]) == receipts[2]
    assert len(ledger.entries()) == len(ROOTS)


def test_log_file_is_private(local_ctx: LedgerContext) -> None:
    filled(local_ctx)
    mode = stat.S_IMODE((local_ctx.home / LOG_FILE).stat().st_mode)
    assert mode == 0o600


def test_publish_needs_the_identity(home: Path) -> None:
    with pytest.raises(KeystoreError):
        LocalLedger(LedgerContext(home=home)).publish(ROOTS[0])


def test_changed_entry_is_detected(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    with db(local_ctx.home) as conn:
        conn.execute("UPDATE entries SET root = ? WHERE seq = 2", ((b"\xee" * 32).hex(),))
    with pytest.raises(VerificationError, match="entry 2: content does not match its hash"):
        ledger.lookup(receipts[3])


def test_changed_time_is_detected(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    with db(local_ctx.home) as conn:
        conn.execute("UPDATE entries SET time = '2020-01-01T00:00:00Z' WHERE seq = 3")
    with pytest.raises(VerificationError, match="entry 3"):
        ledger.lookup(receipts[0])


def test_removed_entry_is_detected(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    with db(local_ctx.home) as conn:
        conn.execute("DELETE FROM entries WHERE seq = 2")
    with pytest.raises(VerificationError, match="entry 2: missing"):
        ledger.lookup(receipts[0])


def test_removed_last_entry_is_detected_through_its_receipt(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    with db(local_ctx.home) as conn:
        conn.execute("DELETE FROM entries WHERE seq = 4")
    assert ledger.lookup(receipts[0]).confirmed  # the rest of the chain is intact
    with pytest.raises(VerificationError, match="entry 4: missing"):
        ledger.lookup(receipts[3])


def test_reordered_entries_are_detected(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    with db(local_ctx.home) as conn:
        conn.execute("UPDATE entries SET seq = 100 WHERE seq = 2")
        conn.execute("UPDATE entries SET seq = 2 WHERE seq = 3")
        conn.execute("UPDATE entries SET seq = 3 WHERE seq = 100")
    with pytest.raises(VerificationError, match="entry 2"):
        ledger.lookup(receipts[0])


def test_swapped_contents_are_detected(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    with db(local_ctx.home) as conn:
        rows = conn.execute(
            "SELECT seq, prev, root, time, signer, signature, entry_hash FROM entries"
            " WHERE seq IN (2, 3) ORDER BY seq"
        ).fetchall()
        for (seq, *_), (_, *values) in zip(rows, reversed(rows), strict=True):
            conn.execute(
                "UPDATE entries SET prev=?, root=?, time=?, signer=?, signature=?, entry_hash=?"
                " WHERE seq = ?",
                (*values, seq),
            )
    with pytest.raises(VerificationError, match="entry 2"):
        ledger.lookup(receipts[0])


def test_entry_signed_by_another_key_is_detected(local_ctx: LedgerContext, home: Path) -> None:
    ledger, receipts = filled(local_ctx)
    # Someone else's wallet appends to our log: its chain is intact but the signer is wrong.
    intruder = LocalLedger(LedgerContext(home=home, identity=Identity(b"\x07" * 32)))
    with pytest.raises(VerificationError, match="signed by another key"):
        intruder.publish(b"\x99" * 32)
    with db(home) as conn:
        conn.execute("UPDATE entries SET signature = ? WHERE seq = 1", ("00" * 64,))
    with pytest.raises(VerificationError, match="entry 1: signature is not valid"):
        ledger.lookup(receipts[1])


def test_tampered_log_refuses_new_entries(local_ctx: LedgerContext) -> None:
    ledger, _ = filled(local_ctx)
    with db(local_ctx.home) as conn:
        conn.execute("DELETE FROM entries WHERE seq = 1")
    with pytest.raises(VerificationError, match="entry 1"):
        ledger.publish(b"\x55" * 32)


def test_receipt_that_does_not_match_the_entry(local_ctx: LedgerContext) -> None:
    ledger, receipts = filled(local_ctx)
    forged = Receipt("local", ROOTS[0], {**receipts[0].details, "entry_hash": "ab" * 32})
    with pytest.raises(VerificationError, match="entry 1: does not match the receipt"):
        ledger.lookup(forged)
    not_local = Receipt("ethereum", ROOTS[0], {})
    assert ledger.lookup(not_local).problem == "receipt is for ledger 'ethereum'"
