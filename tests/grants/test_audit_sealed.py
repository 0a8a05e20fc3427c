"""The audit log at rest: entries are sealed under the seed; a plain v1 log is sealed once."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from healthwallet.audit import GENESIS, SEALED_EVENT, AuditLog, entry_hash
from healthwallet.envelope import canonical_json
from healthwallet.keys import Identity

ME = Identity(b"\x07" * 32)
NEW_ME = Identity(b"\x0a" * 32)
DOCTOR = Identity(b"\x09" * 32).did
STUDY = "NCT-MARKER-HIV-0001"
WHEN = datetime(2024, 5, 1, tzinfo=UTC)


def _v1_log(path: Path, signer: Identity, entries: list[tuple[str, dict[str, object]]]) -> None:
    """A log exactly as healthwallet wrote it before sealing (format v1, plain JSON lines)."""
    lines, prev = [], GENESIS
    for seq, (event, details) in enumerate(entries, start=1):
        time = f"2024-05-01T00:00:0{seq}.000000Z"
        digest = entry_hash(seq, time, event, details, prev)
        sig = signer.sign(b"healthwallet-audit/v1\n" + bytes.fromhex(digest))
        entry = {"seq": seq, "time": time, "event": event, "details": details, "prev": prev,
                 "hash": digest, "sig": base64.urlsafe_b64encode(sig).rstrip(b"=").decode()}
        lines.append(canonical_json(entry) + b"\n")
        prev = digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))


V1_ENTRIES: list[tuple[str, dict[str, object]]] = [
    ("grant.issued", {"grant_id": "urn:uuid:1", "recipient": DOCTOR, "expires": "2024-06-01"}),
    ("share.issued", {"share_id": "urn:uuid:2", "recipient": DOCTOR, "study": STUDY,
                      "categories": ["Condition"]}),
]


def test_audit_entries_at_rest_hide_their_details(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "home", ME, clock=lambda: WHEN)
    log.append("share.issued", {"recipient": DOCTOR, "study": STUDY, "categories": ["Condition"]})
    raw = log.path.read_bytes()
    for secret in (DOCTOR, STUDY, "Condition", "share.issued", "2024-05-01"):
        assert secret.encode() not in raw
    (entry,) = log.read()
    assert entry["event"] == "share.issued" and entry["details"]["study"] == STUDY
    assert log.verify_chain().ok


def test_audit_chain_checks_without_the_seed(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "home", ME, clock=lambda: WHEN)
    log.append("grant.issued", {"recipient": DOCTOR})
    # Anyone with the DID can check the chain; only the seed opens the entries.
    stranger = AuditLog(log.home, Identity(b"\x01" * 32))
    assert stranger.verify_chain(signer_did=ME.did).ok
    assert stranger.read()[0]["event"] == "unreadable"


def test_plain_v1_audit_log_is_sealed_keeping_its_chain(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _v1_log(home / "audit.log", ME, V1_ENTRIES)
    log = AuditLog(home, ME, clock=lambda: WHEN)
    assert log.verify_chain().ok  # a v1 log still checks before it is sealed
    assert log.seal_legacy() is True
    assert log.seal_legacy() is False  # once
    raw = log.path.read_bytes()
    assert STUDY.encode() not in raw and DOCTOR.encode() not in raw
    entries = log.read()
    assert [e["event"] for e in entries] == ["grant.issued", "share.issued", SEALED_EVENT]
    assert entries[1]["details"]["study"] == STUDY
    assert entries[0]["time"] == "2024-05-01T00:00:01.000000Z"
    assert entries[2]["details"]["v1_ok"] is True and entries[2]["details"]["v1_entries"] == 2
    assert log.verify_chain().ok
    log.append("grant.revoked", {"grant_id": "urn:uuid:1"})
    assert [e["seq"] for e in log.read()] == [1, 2, 3, 4] and log.verify_chain().ok


def test_v1_log_damaged_before_sealing_stays_bad(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _v1_log(home / "audit.log", ME, V1_ENTRIES)
    lines = (home / "audit.log").read_bytes().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["details"]["study"] = "NCT-OTHER"
    lines[1] = canonical_json(edited) + b"\n"
    (home / "audit.log").write_bytes(b"".join(lines))
    log = AuditLog(home, ME, clock=lambda: WHEN)
    log.append("grant.revoked", {"grant_id": "urn:uuid:1"})  # appending seals first
    assert b"NCT-OTHER" not in log.path.read_bytes()
    report = log.verify_chain()
    assert not report.ok and report.first_bad == 2 and "before it was sealed" in report.reason


def test_entries_sealed_before_a_key_rotation_still_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    AuditLog(home, ME, clock=lambda: WHEN).append("grant.issued", {"recipient": DOCTOR})
    rotated = AuditLog(home, NEW_ME, clock=lambda: WHEN, retired=[ME])
    rotated.append("grant.revoked", {"grant_id": "urn:uuid:1"})
    entries = rotated.read()
    assert [e["event"] for e in entries] == ["grant.issued", "grant.revoked"]
    assert entries[0]["details"]["recipient"] == DOCTOR
    assert rotated.verify_chain().ok
