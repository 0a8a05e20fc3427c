"""The audit log: append-only, hash-chained, signed; the first bad entry is named."""

from __future__ import annotations

import itertools
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from healthwallet.audit import GENESIS, AuditLog
from healthwallet.errors import UsageError
from healthwallet.keys import Identity

ME = Identity(b"\x07" * 32)
OTHER = Identity(b"\x08" * 32)
DOCTOR = Identity(b"\x09" * 32).did


def clock() -> datetime:
    clock.now += timedelta(seconds=1)  # type: ignore[attr-defined]
    return clock.now  # type: ignore[attr-defined, no-any-return]


clock.now = datetime(2024, 5, 1, tzinfo=UTC)  # type: ignore[attr-defined]


def filled_log(tmp_path: Path, entries: int = 4) -> AuditLog:
    log = AuditLog(tmp_path / "home", ME, clock=clock)
    for number in range(entries):
        log.append("grant.issued", {"grant_id": f"urn:uuid:{number}", "recipient": DOCTOR})
    return log


def test_append_read_verify(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    entries = log.read()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(entries))
    report = log.verify_chain()
    assert report.ok and report.entries == 4 and report.first_bad is None
    assert report.head == entries[-1]["hash"]
    assert log.verify_chain(expected_head=entries[-1]["hash"]).ok
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.home.stat().st_mode) == 0o700


def _rewrite(log: AuditLog, lines: list[bytes]) -> None:
    log.path.write_bytes(b"".join(lines))


def test_edited_entry_is_named(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    lines = log.path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[2])
    entry["sealed"] = json.loads(lines[0])["sealed"]  # another entry's sealed content
    lines[2] = json.dumps(entry).encode() + b"\n"
    _rewrite(log, lines)
    report = log.verify_chain()
    assert not report.ok and report.first_bad == 3 and "hash" in report.reason


def test_rehashed_entry_fails_its_signature(tmp_path: Path) -> None:
    from healthwallet.audit import sealed_entry_hash

    log = filled_log(tmp_path, 2)
    lines = log.path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["sealed"] = json.loads(lines[0])["sealed"]
    entry["hash"] = sealed_entry_hash(2, entry["sealed"], entry["prev"])
    lines[1] = json.dumps(entry).encode() + b"\n"
    _rewrite(log, lines)
    report = log.verify_chain()
    assert report.first_bad == 2 and "signature" in report.reason


def test_deleted_and_reordered_entries_are_named(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    lines = log.path.read_bytes().splitlines(keepends=True)
    _rewrite(log, lines[:1] + lines[2:])
    assert log.verify_chain().first_bad == 2
    _rewrite(log, [lines[1], lines[0], *lines[2:]])
    assert log.verify_chain().first_bad == 1


def test_truncation_shows_against_a_kept_head(tmp_path: Path) -> None:
    log = filled_log(tmp_path)
    head = log.verify_chain().head
    lines = log.path.read_bytes().splitlines(keepends=True)
    _rewrite(log, lines[:-1])
    assert log.verify_chain().ok  # a chain alone cannot see a cut-off tail
    report = log.verify_chain(expected_head=head)
    assert not report.ok and report.first_bad == 4


def test_another_signer_is_refused(tmp_path: Path) -> None:
    log = filled_log(tmp_path, 1)
    assert not AuditLog(log.home, OTHER).verify_chain().ok
    assert log.verify_chain(signer_did=ME.did).ok
    assert not log.verify_chain(signer_did=OTHER.did).ok


def test_junk_line_is_named(tmp_path: Path) -> None:
    log = filled_log(tmp_path, 2)
    with log.path.open("ab") as handle:
        handle.write(b"not json\n")
    report = log.verify_chain()
    assert report.first_bad == 3 and report.reason == "not JSON"


@pytest.mark.parametrize(
    "details",
    [
        {"note": "positive HIV test"},  # prose: spaces are refused
        {"Bad Key": "x"},
        {"values": ["ok", "not ok"]},
        {"nested": {"a": 1}},
        {"amount": 1.5},
    ],
)
def test_details_hold_ids_only(tmp_path: Path, details: dict[str, object]) -> None:
    log = AuditLog(tmp_path / "home", ME, clock=clock)
    with pytest.raises(UsageError) as caught:
        log.append("grant.issued", details)
    assert "HIV" not in caught.value.message
    assert not log.path.exists()


def test_event_names_are_checked(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "home", ME, clock=clock)
    with pytest.raises(UsageError):
        log.append("Grant Issued")
