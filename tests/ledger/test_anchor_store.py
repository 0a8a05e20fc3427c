"""Anchoring batches of commitments on the local ledger; portable proofs; tampering."""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from healthwallet.anchors import (
    ANCHORS_FILE,
    AnchorStore,
    proof_problems,
    verify_portable_proof,
    verify_proof_on_ledger,
)
from healthwallet.errors import BadInputError, NotFoundError, VerificationError
from healthwallet.keys import Identity
from healthwallet.ledger.base import LedgerContext, Receipt
from healthwallet.ledger.local import LOG_FILE, LocalLedger
from healthwallet.ledger.merkle import leaf_hash, verify_inclusion

from .conftest import FIXED_NOW


def commitment(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


VAULT = {f"rec-{i:02d}": commitment(f"record {i}") for i in range(7)}


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def store(home: Path) -> Iterator[AnchorStore]:
    with AnchorStore(home, clock=lambda: FIXED_NOW) as opened:
        yield opened


@pytest.fixture
def ledger(local_ctx: LedgerContext) -> LocalLedger:
    return LocalLedger(local_ctx)


def test_anchor_publishes_one_root_per_batch(store: AnchorStore, ledger: LocalLedger) -> None:
    outcome = store.anchor_pending(VAULT, ledger).to_json()
    assert outcome["count"] == 7
    assert outcome["ledger"] == "local"
    assert outcome["anchored_at"] == "2025-03-01T12:00:00Z"
    assert outcome["receipt"]["root"] == outcome["root"]
    assert set(outcome) == {"root", "ledger", "receipt", "count", "anchored_at"}
    assert [e.root for e in ledger.entries()] == [outcome["root"]]  # one write for 7 records

    # Nothing pending: no write at all.
    again = store.anchor_pending(VAULT, ledger).to_json()
    assert again == {
        "root": None,
        "ledger": "local",
        "receipt": None,
        "count": 0,
        "anchored_at": None,
    }
    assert len(ledger.entries()) == 1

    # A new record and a new version of an old one make the next batch, and only they do.
    later = {**VAULT, "rec-new": commitment("new"), "rec-00": commitment("record 0 v2")}
    assert store.pending(later) == sorted([("rec-new", commitment("new")),
                                           ("rec-00", commitment("record 0 v2"))])  # fmt: skip
    second = store.anchor_pending(later, ledger).to_json()
    assert second["count"] == 2 and second["root"] != outcome["root"]
    assert len(ledger.entries()) == 2


def test_status_counts(store: AnchorStore, ledger: LocalLedger) -> None:
    assert store.status(VAULT).to_json() == {"pending": 7, "anchored": 0, "confirmed": 0}
    store.anchor_pending(VAULT, ledger)
    later = {**VAULT, "rec-new": commitment("new")}
    assert store.status(later, ledger).to_json() == {"pending": 1, "anchored": 7, "confirmed": 7}


def test_every_record_gets_a_portable_proof(store: AnchorStore, ledger: LocalLedger) -> None:
    store.anchor_pending(VAULT, ledger)
    for index, (record_id, value) in enumerate(sorted(VAULT.items())):
        proof = store.proof_for(record_id)
        assert json.loads(json.dumps(proof)) == proof  # JSON-able as is
        assert proof["record"] == record_id and proof["commitment"] == value
        assert proof["leaf_index"] == index and proof["tree_size"] == 7
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert verify_inclusion(
            leaf_hash(bytes.fromhex(value)), index, 7, path, bytes.fromhex(proof["root"])
        )
        result = verify_portable_proof(proof, value, expected_signer=ledger._ctx.identity.did)  # type: ignore[union-attr]
        assert result == {
            "record": record_id,
            "root": proof["root"],
            "ledger": "local",
            "anchored_at": "2025-03-01T12:00:00Z",
            "valid": True,
        }
        verdict = store.verify_record(record_id, value, ledger)
        assert verdict.valid and verdict.to_json()["valid"] is True
        verdict.raise_for_failure()


def test_proof_for_unknown_or_unanchored_record(store: AnchorStore, ledger: LocalLedger) -> None:
    with pytest.raises(NotFoundError, match="rec-xx has no anchor"):
        store.proof_for("rec-xx")


def test_bad_commitments_are_refused(store: AnchorStore, ledger: LocalLedger) -> None:
    with pytest.raises(BadInputError, match="commitment of record rec-bad"):
        store.anchor_pending({"rec-bad": "abc"}, ledger)
    with pytest.raises(BadInputError):
        store.status({"": commitment("x")})


def test_files_are_private(home: Path, store: AnchorStore, ledger: LocalLedger) -> None:
    store.anchor_pending(VAULT, ledger)
    for name in (ANCHORS_FILE, ANCHORS_FILE + "-wal", ANCHORS_FILE + "-shm"):
        path = home / name
        if path.exists():  # -wal / -shm exist while the store is open in WAL mode
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (home / (ANCHORS_FILE + "-wal")).exists()
    with raw(home / ANCHORS_FILE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_wrong_commitment_fails_by_name(store: AnchorStore, ledger: LocalLedger) -> None:
    store.anchor_pending(VAULT, ledger)
    verdict = store.verify_record("rec-01", commitment("something else"), ledger)
    assert not verdict.valid
    assert "commitment does not match the anchored leaf" in verdict.problems
    with pytest.raises(VerificationError, match="rec-01: commitment does not match"):
        verdict.raise_for_failure()


def test_tampered_stored_proof_fails_by_name(
    home: Path, store: AnchorStore, ledger: LocalLedger
) -> None:
    store.anchor_pending(VAULT, ledger)
    with raw(home / ANCHORS_FILE) as conn:
        conn.execute("UPDATE leaves SET audit_path = ? WHERE record_id = 'rec-03'", (b"\x42" * 96,))
    verdict = store.verify_record("rec-03", VAULT["rec-03"], ledger)
    assert verdict.problems == ("inclusion proof does not lead to the root",)
    assert store.verify_record("rec-04", VAULT["rec-04"], ledger).valid


def test_tampered_tree_node_fails_by_name(
    home: Path, store: AnchorStore, ledger: LocalLedger
) -> None:
    store.anchor_pending(VAULT, ledger)
    with raw(home / ANCHORS_FILE) as conn:
        # rec-03 is leaf 3: its level-1 sibling is node 0 (over leaves 0 and 1)
        from healthwallet.ledger.merkle import level_sizes

        stored = conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
        assert stored == sum(level_sizes(len(VAULT))[1:])  # O(n) nodes, not a path per leaf
        conn.execute("UPDATE nodes SET hash = ? WHERE level = 1 AND idx = 0", (b"\x42" * 32,))
    verdict = store.verify_record("rec-03", VAULT["rec-03"], ledger)
    assert verdict.problems == ("inclusion proof does not lead to the root",)
    assert store.verify_record("rec-04", VAULT["rec-04"], ledger).valid
    with raw(home / ANCHORS_FILE) as conn:
        conn.execute("DELETE FROM nodes WHERE level = 1 AND idx = 0")
    with pytest.raises(VerificationError, match="node 1/0 is missing"):
        store.verify_record("rec-03", VAULT["rec-03"], ledger)


def test_reordered_stored_leaves_fail_by_name(
    home: Path, store: AnchorStore, ledger: LocalLedger
) -> None:
    store.anchor_pending(VAULT, ledger)
    with raw(home / ANCHORS_FILE) as conn:
        conn.execute(
            "UPDATE leaves SET leaf_index = CASE record_id WHEN 'rec-01' THEN 2 ELSE 1 END"
            " WHERE record_id IN ('rec-01', 'rec-02')"
        )
    for record_id in ("rec-01", "rec-02"):
        verdict = store.verify_record(record_id, VAULT[record_id], ledger)
        assert verdict.problems == ("inclusion proof does not lead to the root",)


def test_tampered_stored_root_fails_by_name(
    home: Path, store: AnchorStore, ledger: LocalLedger
) -> None:
    store.anchor_pending(VAULT, ledger)
    with raw(home / ANCHORS_FILE) as conn:
        conn.execute("UPDATE batches SET root = ?", ("ab" * 32,))
    verdict = store.verify_record("rec-03", VAULT["rec-03"], ledger)
    assert not verdict.valid
    assert "inclusion proof does not lead to the root" in verdict.problems
    assert "receipt is for another root" in verdict.problems
    assert "ledger holds another root than the proof" in verdict.problems


def test_tampered_local_log_fails_verification_by_name(
    home: Path, store: AnchorStore, ledger: LocalLedger
) -> None:
    store.anchor_pending(VAULT, ledger)
    store.anchor_pending({**VAULT, "rec-new": commitment("new")}, ledger)
    with raw(home / LOG_FILE) as conn:
        conn.execute("UPDATE entries SET time = '2030-01-01T00:00:00Z' WHERE seq = 1")
    verdict = store.verify_record("rec-new", commitment("new"), ledger)
    assert verdict.problems == ("local ledger entry 1: content does not match its hash",)
    # Offline, the proof still stands on its own signed entry (it was copied at anchor time).
    assert store.verify_record("rec-new", commitment("new")).valid


def test_deleted_local_log_entry_fails_verification(
    home: Path, store: AnchorStore, ledger: LocalLedger
) -> None:
    store.anchor_pending(VAULT, ledger)
    with raw(home / LOG_FILE) as conn:
        conn.execute("DELETE FROM entries")
    verdict = store.verify_record("rec-00", VAULT["rec-00"], ledger)
    assert verdict.problems == ("local ledger entry 1: missing",)


def test_status_reports_a_tampered_log(home: Path, store: AnchorStore, ledger: LocalLedger) -> None:
    store.anchor_pending(VAULT, ledger)
    with raw(home / ANCHORS_FILE) as conn:
        conn.execute("UPDATE batches SET confirmed = 0")
    with raw(home / LOG_FILE) as conn:
        conn.execute("UPDATE entries SET root = ?", ("cd" * 32,))
    status = store.status(VAULT, ledger)
    assert status.to_json() == {"pending": 0, "anchored": 7, "confirmed": 0}
    assert status.problems == ("local ledger entry 1: content does not match its hash",)


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


class CrashAfterPublish:
    """The real ledger, but the process 'dies' right after publish returns."""

    def __init__(self, inner: LocalLedger) -> None:
        self.inner = inner
        self.name = inner.name

    def publish(self, root: bytes) -> Receipt:
        self.inner.publish(root)
        raise Crash

    def lookup(self, receipt: Receipt) -> object:
        return self.inner.lookup(receipt)


def test_crash_between_publish_and_saving_anchors_once(
    home: Path, store: AnchorStore, ledger: LocalLedger
) -> None:
    with pytest.raises(Crash):
        store.anchor_pending(VAULT, CrashAfterPublish(ledger))  # type: ignore[arg-type]
    store.close()
    with AnchorStore(home) as reopened:
        assert reopened.status(VAULT).to_json() == {"pending": 7, "anchored": 0, "confirmed": 0}
        outcome = reopened.anchor_pending(VAULT, ledger)
        assert outcome.count == 7
        assert len(ledger.entries()) == 1  # the root the crashed run wrote, not a second one
        assert outcome.batches[0].receipt.details["seq"] == 1
        assert reopened.status(VAULT).to_json() == {"pending": 0, "anchored": 7, "confirmed": 7}


def test_portable_proof_tampering_is_named(store: AnchorStore, ledger: LocalLedger) -> None:
    store.anchor_pending(VAULT, ledger)
    proof = store.proof_for("rec-05")
    value = VAULT["rec-05"]
    did = ledger._ctx.identity.did  # type: ignore[union-attr]

    def problems_after(change: object) -> list[str]:
        changed = copy.deepcopy(proof)
        change(changed)  # type: ignore[operator]
        return proof_problems(changed, value, expected_signer=did)

    assert problems_after(lambda p: None) == []
    assert problems_after(lambda p: p.update(leaf_index=4)) == [
        "inclusion proof does not lead to the root"
    ]
    assert problems_after(lambda p: p["audit_path"].reverse()) == [
        "inclusion proof does not lead to the root"
    ]
    assert problems_after(lambda p: p.update(root="00" * 32)) == [
        "inclusion proof does not lead to the root",
        "receipt is for another root",
        "local ledger entry 1: holds another root",
    ]
    assert problems_after(
        lambda p: p["receipt"]["details"]["entry"].update(time="2020-01-01T00:00:00Z")
    ) == ["local ledger entry 1: content does not match its hash"]
    assert problems_after(lambda p: p.update(ledger="ethereum")) == [
        "receipt is from another ledger"
    ]
    assert problems_after(lambda p: p.update(version=2)) == [
        "anchor proof is malformed: not a v1 anchor proof"
    ]
    assert proof_problems(proof, value, expected_signer=Identity(b"\x05" * 32).did) == [
        "local ledger entry 1: signed by another key than expected"
    ]
    with pytest.raises(VerificationError, match="rec-05: commitment does not match"):
        verify_portable_proof(proof, commitment("forged"))


def test_proof_checked_against_the_ledger(store: AnchorStore, ledger: LocalLedger) -> None:
    store.anchor_pending(VAULT, ledger)
    proof = store.proof_for("rec-02")
    verdict = verify_proof_on_ledger(proof, VAULT["rec-02"], ledger)
    assert verdict.to_json() == {
        "record": "rec-02",
        "root": proof["root"],
        "ledger": "local",
        "anchored_at": "2025-03-01T12:00:00Z",
        "valid": True,
    }
