"""Anchoring record commitments: batches, inclusion proofs, receipts, verification.

``anchor_pending`` puts every (record id, commitment) not yet in a batch into one
RFC 9162 Merkle tree and publishes only its root: one ledger write per batch.
A batch and every member's inclusion proof are committed to ``<home>/anchors.sqlite``
before the root is published, and ledgers publish idempotently per root, so a
failure or crash at any point leaves the batch pending, to be published (once)
by the next run. Proofs leave the wallet as portable JSON (docs/anchoring.md).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import jsonutil
from .errors import (
    BadInputError,
    InternalError,
    NetworkError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from .ledger.base import (
    Ledger,
    LookupResult,
    Receipt,
    format_time,
    open_private_db,
    utc_now,
)
from .ledger.local import LocalLedger, entry_from_json, entry_problem
from .ledger.merkle import (
    HASH_SIZE,
    MerkleBatch,
    audit_path_from,
    leaf_hash,
    split_path,
    verify_inclusion,
)

ANCHORS_FILE = "anchors.sqlite"
SCHEMA_VERSION = 1
PROOF_TYPE = "HealthWalletAnchorProof"
PROOF_VERSION = 1
TREE_ALGORITHM = "rfc9162-sha256"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    ledger TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('publishing', 'published')),
    receipt TEXT,
    published_at TEXT,
    anchored_at TEXT,
    confirmations INTEGER NOT NULL DEFAULT 0,
    confirmed INTEGER NOT NULL DEFAULT 0,
    problem TEXT
);
CREATE TABLE IF NOT EXISTS leaves (
    record_id TEXT NOT NULL,
    commitment TEXT NOT NULL,
    batch_id INTEGER NOT NULL REFERENCES batches(id),
    leaf_index INTEGER NOT NULL,
    audit_path BLOB NOT NULL,
    PRIMARY KEY (record_id, commitment)
);
CREATE INDEX IF NOT EXISTS leaves_batch ON leaves(batch_id, leaf_index);
-- The tree above the leaves (levels 1..top), one row per node: any leaf's audit path is
-- read from here in O(log n) lookups, so a batch stores O(n) hashes instead of every
-- leaf's path (O(n log n)). leaves.audit_path is left empty for such batches.
CREATE TABLE IF NOT EXISTS nodes (
    batch_id INTEGER NOT NULL REFERENCES batches(id),
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (batch_id, level, idx)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class BatchResult:
    """One published batch."""

    root: bytes
    ledger: str
    receipt: Receipt
    count: int
    anchored_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The `anchor` JSON contract for this batch."""
        return {
            "root": self.root.hex(),
            "ledger": self.ledger,
            "receipt": self.receipt.to_json(),
            "count": self.count,
            "anchored_at": format_time(self.anchored_at) if self.anchored_at else None,
        }


@dataclass(frozen=True)
class AnchorOutcome:
    """What one `anchor` run published: usually one batch, none if nothing was pending."""

    ledger: str
    batches: tuple[BatchResult, ...]

    @property
    def count(self) -> int:
        """Records anchored by this run."""
        return sum(batch.count for batch in self.batches)

    def to_json(self) -> dict[str, Any]:
        """{"root","ledger","receipt","count","anchored_at"}: the last batch, count over all."""
        if not self.batches:
            return {
                "root": None,
                "ledger": self.ledger,
                "receipt": None,
                "count": 0,
                "anchored_at": None,
            }
        return {**self.batches[-1].to_json(), "count": self.count}


@dataclass(frozen=True)
class AnchorStatus:
    """Counts over the vault's current records; anchored includes confirmed."""

    pending: int
    anchored: int
    confirmed: int
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The `anchor status` JSON contract: {"pending","anchored","confirmed"}."""
        return {"pending": self.pending, "anchored": self.anchored, "confirmed": self.confirmed}


@dataclass(frozen=True)
class AnchorVerification:
    """The verdict on one record's anchor; ``problems`` name every check that failed."""

    record: str
    root: str | None
    ledger: str | None
    anchored_at: str | None
    problems: tuple[str, ...]

    @property
    def valid(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The `anchor verify` JSON contract: {"record","root","ledger","anchored_at","valid"}."""
        return {
            "record": self.record,
            "root": self.root,
            "ledger": self.ledger,
            "anchored_at": self.anchored_at,
            "valid": self.valid,
        }

    def raise_for_failure(self) -> None:
        """VerificationError naming what did not match, if anything did."""
        if self.problems:
            raise VerificationError(f"anchor of record {self.record}: " + "; ".join(self.problems))


def normalize_commitments(commitments: Mapping[str, str]) -> dict[str, str]:
    """Record id -> lowercase commitment hex; BadInputError naming a bad record."""
    out: dict[str, str] = {}
    for record_id, commitment in commitments.items():
        if not isinstance(record_id, str) or not record_id:
            raise BadInputError("a record id is empty")
        out[record_id] = _commitment_hex(commitment, record_id)
    return out


def _commitment_hex(commitment: object, record_id: str) -> str:
    text = commitment.lower() if isinstance(commitment, str) else ""
    if len(text) != 2 * HASH_SIZE or any(c not in "0123456789abcdef" for c in text):
        raise BadInputError(f"commitment of record {record_id} is not 32 bytes of hex")
    return text


class AnchorStore:
    """Batches, proofs and receipts of one wallet, in ``<home>/anchors.sqlite``."""

    def __init__(self, home: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.path = home / ANCHORS_FILE
        self._clock = clock
        self._conn = open_private_db(self.path)
        try:
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
        except sqlite3.Error as exc:
            self._conn.close()
            raise StorageError(f"cannot open {ANCHORS_FILE} ({type(exc).__name__})") from exc

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> AnchorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            yield self._conn
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StorageError(f"cannot write {ANCHORS_FILE} ({type(exc).__name__})") from exc
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _batched_pairs(self) -> set[tuple[str, str]]:
        rows = self._conn.execute("SELECT record_id, commitment FROM leaves").fetchall()
        return {(str(r[0]), str(r[1])) for r in rows}

    def pending(self, commitments: Mapping[str, str]) -> list[tuple[str, str]]:
        """(record id, commitment) pairs in no batch yet, in the order they would be anchored."""
        current = normalize_commitments(commitments)
        batched = self._batched_pairs()
        return sorted(pair for pair in current.items() if pair not in batched)

    def anchor_pending(self, commitments: Mapping[str, str], ledger: Ledger) -> AnchorOutcome:
        """Publish unfinished batches of ``ledger``, then everything pending as one new batch."""
        current = normalize_commitments(commitments)
        results = [
            self._publish(batch_id, root, ledger)
            for batch_id, root in self._unpublished(ledger.name)
        ]
        created = self._create_batch(current, ledger.name)
        if created is not None:
            results.append(self._publish(*created, ledger))
        return AnchorOutcome(ledger.name, tuple(results))

    def _unpublished(self, ledger_name: str) -> list[tuple[int, bytes]]:
        rows = self._conn.execute(
            "SELECT id, root FROM batches WHERE state = 'publishing' AND ledger = ? ORDER BY id",
            (ledger_name,),
        ).fetchall()
        return [(int(r[0]), bytes.fromhex(r[1])) for r in rows]

    def _create_batch(self, current: dict[str, str], ledger_name: str) -> tuple[int, bytes] | None:
        with self._write() as conn:
            # Recomputed inside the write lock so two runs cannot batch a record twice.
            batched = self._batched_pairs()
            members = sorted(pair for pair in current.items() if pair not in batched)
            if not members:
                return None
            tree = MerkleBatch([bytes.fromhex(commitment) for _, commitment in members])
            cursor = conn.execute(
                "INSERT INTO batches (root, ledger, size, created_at, state)"
                " VALUES (?, ?, ?, ?, 'publishing')",
                (tree.root.hex(), ledger_name, tree.size, format_time(self._clock())),
            )
            batch_id = int(cursor.lastrowid or 0)
            conn.executemany(
                "INSERT INTO leaves (record_id, commitment, batch_id, leaf_index, audit_path)"
                " VALUES (?, ?, ?, ?, x'')",
                (
                    (record_id, commitment, batch_id, index)
                    for index, (record_id, commitment) in enumerate(members)
                ),
            )
            conn.executemany(
                "INSERT INTO nodes (batch_id, level, idx, hash) VALUES (?, ?, ?, ?)",
                ((batch_id, level, index, node) for level, index, node in tree.inner_nodes()),
            )
            return batch_id, tree.root

    def _publish(self, batch_id: int, root: bytes, ledger: Ledger) -> BatchResult:
        receipt = ledger.publish(root)
        if receipt.root != root or receipt.ledger != ledger.name:
            raise InternalError(f"ledger {ledger.name!r} returned a receipt for another root")
        with self._write() as conn:
            conn.execute(
                "UPDATE batches SET state = 'published', receipt = ?, published_at = ?"
                " WHERE id = ?",
                (
                    json.dumps(receipt.to_json(), sort_keys=True),
                    format_time(self._clock()),
                    batch_id,
                ),
            )
        try:
            looked_up: LookupResult | None = ledger.lookup(receipt)
        except NetworkError:
            looked_up = None  # published and saved; confirmation can wait for `status`
        if looked_up is not None:
            self._save_lookup(batch_id, looked_up)
        count = self._conn.execute("SELECT size FROM batches WHERE id = ?", (batch_id,)).fetchone()
        anchored_at = looked_up.anchored_at if looked_up is not None else None
        return BatchResult(root, ledger.name, receipt, int(count[0]), anchored_at)

    def _save_lookup(self, batch_id: int, result: LookupResult) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE batches SET anchored_at = ?, confirmations = ?, confirmed = ?, problem = ?"
                " WHERE id = ?",
                (
                    format_time(result.anchored_at) if result.anchored_at else None,
                    result.confirmations,
                    int(result.confirmed),
                    result.problem,
                    batch_id,
                ),
            )

    def status(self, commitments: Mapping[str, str], ledger: Ledger | None = None) -> AnchorStatus:
        """Pending / anchored / confirmed counts; with ``ledger``, re-check unconfirmed batches.

        An unreachable ledger does not fail the status: the stored counts are returned
        and ``problems`` says the confirmations were not refreshed.
        """
        current = normalize_commitments(commitments)
        problems: set[str] = set()
        if ledger is not None:
            unreachable = self.refresh(ledger)
            if unreachable:
                problems.add(unreachable)
        rows = self._conn.execute(
            "SELECT l.record_id, l.commitment, b.state, b.confirmed, b.problem"
            " FROM leaves l JOIN batches b ON b.id = l.batch_id"
        ).fetchall()
        states = {(str(r[0]), str(r[1])): (str(r[2]), bool(r[3]), r[4]) for r in rows}
        pending = anchored = confirmed = 0
        for pair in current.items():
            state = states.get(pair)
            if state is None or state[0] != "published":
                pending += 1
                continue
            anchored += 1
            confirmed += state[1]
            if state[2]:
                problems.add(str(state[2]))
        return AnchorStatus(pending, anchored, confirmed, tuple(sorted(problems)))

    def refresh(self, ledger: Ledger) -> str | None:
        """Look up every published, unconfirmed batch of ``ledger`` and store what it says.

        Returns why the refresh stopped early (ledger unreachable), or None.
        """
        rows = self._conn.execute(
            "SELECT id, receipt FROM batches"
            " WHERE state = 'published' AND confirmed = 0 AND ledger = ? ORDER BY id",
            (ledger.name,),
        ).fetchall()
        for batch_id, receipt_text in rows:
            try:
                receipt = Receipt.from_json(jsonutil.loads(receipt_text))
                result = ledger.lookup(receipt)
            except NetworkError as exc:
                return f"confirmations not refreshed: {exc.message}"
            except (VerificationError, BadInputError, ValueError) as exc:
                message = exc.message if isinstance(exc, VerificationError | BadInputError) else ""
                result = LookupResult(
                    None, None, 0, False, message or "stored receipt is malformed"
                )
            self._save_lookup(int(batch_id), result)
        return None

    def proof_for(self, record_id: str, commitment_hex: str | None = None) -> dict[str, Any]:
        """The portable proof (docs/anchoring.md, proof v1) of a record's latest anchor."""
        query = (
            "SELECT l.commitment, l.leaf_index, l.audit_path, b.root, b.size, b.ledger,"
            " b.receipt, b.anchored_at, b.id FROM leaves l JOIN batches b ON b.id = l.batch_id"
            " WHERE l.record_id = ? AND b.state = 'published'"
        )
        params: tuple[str, ...] = (record_id,)
        if commitment_hex is not None:
            query += " AND l.commitment = ?"
            params += (_commitment_hex(commitment_hex, record_id),)
        row = self._conn.execute(query + " ORDER BY b.id DESC LIMIT 1", params).fetchone()
        if row is None:
            waiting = self._conn.execute(
                "SELECT 1 FROM leaves WHERE record_id = ? LIMIT 1", (record_id,)
            ).fetchone()
            if waiting:
                raise NotFoundError(
                    f"record {record_id} is not anchored yet", "run `healthwallet anchor`"
                )
            raise NotFoundError(f"record {record_id} has no anchor", "run `healthwallet anchor`")
        commitment, leaf_index, path_blob, root, size, ledger, receipt_text, anchored_at = row[:8]
        try:
            receipt_json: Any = jsonutil.loads(receipt_text)
        except (TypeError, ValueError):
            receipt_json = None
        path = (
            split_path(bytes(path_blob))
            if path_blob
            else self._stored_path(int(row[8]), int(leaf_index), int(size))
        )
        return {
            "type": PROOF_TYPE,
            "version": PROOF_VERSION,
            "tree": TREE_ALGORITHM,
            "record": record_id,
            "commitment": commitment,
            "leaf_index": int(leaf_index),
            "tree_size": int(size),
            "audit_path": [node.hex() for node in path],
            "root": root,
            "ledger": ledger,
            "receipt": receipt_json,
            "anchored_at": anchored_at,
        }

    def _stored_path(self, batch_id: int, index: int, size: int) -> list[bytes]:
        """A leaf's audit path, read from the batch's stored leaves and nodes."""

        def node_at(level: int, position: int) -> bytes:
            if level == 0:
                row = self._conn.execute(
                    "SELECT commitment FROM leaves WHERE batch_id = ? AND leaf_index = ?",
                    (batch_id, position),
                ).fetchone()
                if row is None:
                    raise VerificationError(f"batch {batch_id}: leaf {position} is missing")
                return leaf_hash(bytes.fromhex(str(row[0])))
            row = self._conn.execute(
                "SELECT hash FROM nodes WHERE batch_id = ? AND level = ? AND idx = ?",
                (batch_id, level, position),
            ).fetchone()
            if row is None:
                raise VerificationError(
                    f"batch {batch_id}: tree node {level}/{position} is missing"
                )
            return bytes(row[0])

        return audit_path_from(index, size, node_at)

    def verify_record(
        self, record_id: str, commitment_hex: str, ledger: Ledger | None = None
    ) -> AnchorVerification:
        """Check a record's stored proof against its commitment and, given one, the ledger."""
        commitment = _commitment_hex(commitment_hex, record_id)
        proof = self.proof_for(record_id)
        return verify_proof_on_ledger(proof, commitment, ledger)


def proof_problems(
    proof: Mapping[str, Any], commitment_hex: str, *, expected_signer: str | None = None
) -> list[str]:
    """Every offline check of a portable proof that fails, by name (empty list: all passed)."""
    try:
        parsed = _parse_proof(proof)
    except BadInputError as exc:
        return [f"anchor proof is malformed: {exc.message}"]
    leaf_index, tree_size, path, root, receipt = parsed
    problems: list[str] = []
    commitment = bytes.fromhex(_commitment_hex(commitment_hex, str(proof.get("record", "?"))))
    if proof.get("commitment") != commitment.hex():
        problems.append("commitment does not match the anchored leaf")
    if not verify_inclusion(leaf_hash(commitment), leaf_index, tree_size, path, root):
        problems.append("inclusion proof does not lead to the root")
    if receipt.root != root:
        problems.append("receipt is for another root")
    if receipt.ledger != proof["ledger"]:
        problems.append("receipt is from another ledger")
    if receipt.ledger == LocalLedger.name:
        problems.extend(_local_entry_problems(receipt, root, expected_signer))
    return problems


def _parse_proof(proof: Mapping[str, Any]) -> tuple[int, int, list[bytes], bytes, Receipt]:
    if not isinstance(proof, Mapping):
        raise BadInputError("not an object")
    if proof.get("type") != PROOF_TYPE or proof.get("version") != PROOF_VERSION:
        raise BadInputError("not a v1 anchor proof")
    if proof.get("tree") != TREE_ALGORITHM:
        raise BadInputError("unknown tree algorithm")
    leaf_index, tree_size = proof.get("leaf_index"), proof.get("tree_size")
    if not isinstance(leaf_index, int) or not isinstance(tree_size, int):
        raise BadInputError("leaf_index and tree_size must be integers")
    raw_path = proof.get("audit_path")
    if not isinstance(raw_path, list) or not all(isinstance(h, str) for h in raw_path):
        raise BadInputError("audit_path must be a list of hex hashes")
    try:
        path = [bytes.fromhex(h) for h in raw_path]
        root = bytes.fromhex(str(proof.get("root")))
    except ValueError:
        raise BadInputError("audit_path or root is not hex") from None
    if not isinstance(proof.get("ledger"), str):
        raise BadInputError("ledger must be a name")
    receipt = Receipt.from_json(proof.get("receipt"))
    return leaf_index, tree_size, path, root, receipt


def _local_entry_problems(receipt: Receipt, root: bytes, expected_signer: str | None) -> list[str]:
    try:
        entry = entry_from_json(receipt.details.get("entry"))
    except BadInputError:
        return ["local ledger entry in the receipt is malformed"]
    problems = []
    problem = entry_problem(entry)
    if problem:
        problems.append(problem)
    if entry.root != root.hex():
        problems.append(f"local ledger entry {entry.seq}: holds another root")
    if entry.entry_hash != receipt.details.get("entry_hash") or entry.seq != receipt.details.get(
        "seq"
    ):
        problems.append(f"local ledger entry {entry.seq}: does not match the receipt")
    if expected_signer is not None and entry.signer != expected_signer:
        problems.append(f"local ledger entry {entry.seq}: signed by another key than expected")
    return problems


def verify_portable_proof(
    proof: Mapping[str, Any], commitment_hex: str, *, expected_signer: str | None = None
) -> dict[str, Any]:
    """Offline check of a portable proof; the `anchor verify` dict, or VerificationError naming why.

    For a ``local`` receipt, pass the grant issuer's DID as ``expected_signer``: the
    entry's signature then proves that issuer committed to the root at that time.
    """
    problems = proof_problems(proof, commitment_hex, expected_signer=expected_signer)
    record = str(proof.get("record", "?")) if isinstance(proof, Mapping) else "?"
    if problems:
        raise VerificationError(f"anchor proof of record {record}: " + "; ".join(problems))
    return {
        "record": record,
        "root": proof["root"],
        "ledger": proof["ledger"],
        "anchored_at": proof.get("anchored_at"),
        "valid": True,
    }


def verify_proof_on_ledger(
    proof: Mapping[str, Any],
    commitment_hex: str,
    ledger: Ledger | None,
    *,
    expected_signer: str | None = None,
) -> AnchorVerification:
    """Offline checks of a portable proof, then (given a ledger) what the ledger holds."""
    if not isinstance(proof, Mapping):
        return AnchorVerification(
            "?", None, None, None, ("anchor proof is malformed: not an object",)
        )
    problems = proof_problems(proof, commitment_hex, expected_signer=expected_signer)
    record = str(proof.get("record", "?"))
    root = proof.get("root") if isinstance(proof.get("root"), str) else None
    ledger_name = proof.get("ledger") if isinstance(proof.get("ledger"), str) else None
    anchored_at = proof.get("anchored_at") if isinstance(proof.get("anchored_at"), str) else None
    if ledger is not None:
        if ledger.name != ledger_name:
            problems.append(f"record was anchored on ledger {ledger_name!r}, not {ledger.name!r}")
        else:
            ledger_problems, ledger_time = _ledger_problems(proof, ledger)
            problems.extend(ledger_problems)
            anchored_at = ledger_time or anchored_at
    return AnchorVerification(record, root, ledger_name, anchored_at, tuple(problems))


def _ledger_problems(proof: Mapping[str, Any], ledger: Ledger) -> tuple[list[str], str | None]:
    try:
        receipt = Receipt.from_json(proof.get("receipt"))
    except BadInputError:
        return ["receipt is malformed"], None
    try:
        result = ledger.lookup(receipt)
    except VerificationError as exc:
        return [exc.message], None
    problems = []
    if result.root is None:
        problems.append(f"ledger holds nothing for this receipt ({result.problem or 'not found'})")
    else:
        if result.root.hex() != proof.get("root"):
            problems.append("ledger holds another root than the proof")
        if result.problem:
            problems.append(f"ledger: {result.problem}")
        elif not result.confirmed:
            problems.append(f"ledger: not confirmed yet ({result.confirmations} confirmations)")
    anchored_at = format_time(result.anchored_at) if result.anchored_at else None
    return problems, anchored_at


__all__ = [
    "ANCHORS_FILE",
    "PROOF_TYPE",
    "PROOF_VERSION",
    "AnchorOutcome",
    "AnchorStatus",
    "AnchorStore",
    "AnchorVerification",
    "BatchResult",
    "normalize_commitments",
    "proof_problems",
    "verify_portable_proof",
    "verify_proof_on_ledger",
]
