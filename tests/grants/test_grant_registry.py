"""The issued-grants register: slots, states, revocation, published status lists, audit."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from grant_helpers import DOCTOR, EXPIRES, ISSUED, PATIENT, issue
from leaks import leaked

from healthwallet import statuslist
from healthwallet.audit import AuditLog
from healthwallet.errors import NotFoundError, UsageError
from healthwallet.issued import LIST_SIZE, IssuedGrants, normalize_base_url


@pytest.fixture
def registry(tmp_path: Path) -> IssuedGrants:
    """The patient's registry in a fresh wallet home, on a pinned clock."""
    return IssuedGrants(tmp_path / "patient", PATIENT, clock=lambda: ISSUED)


def test_states_and_listing(registry: IssuedGrants) -> None:
    first = issue(registry)
    second = issue(registry)
    registry.revoke(second.grant_id)
    listed = {g["grant_id"]: g for g in registry.list_grants(now=ISSUED)}
    assert listed[first.grant_id]["status"] == "active"
    assert listed[second.grant_id]["status"] == "revoked"
    assert listed[first.grant_id]["recipient"] == DOCTOR.did
    after = {g["grant_id"]: g["status"] for g in registry.list_grants(now=EXPIRES)}
    assert after == {first.grant_id: "expired", second.grant_id: "revoked"}


def test_unknown_grant_cannot_be_revoked(registry: IssuedGrants) -> None:
    with pytest.raises(NotFoundError):
        registry.revoke("urn:uuid:00000000-0000-4000-8000-000000000000")


def test_slots_are_random_and_unique(tmp_path: Path) -> None:
    draws = iter([b"\x00\x00\x00\x07"] * 3 + [b"\x00\x01\x00\x09"])

    def pinned(size: int) -> bytes:
        return next(draws) if size == 4 else bytes(size)

    registry = IssuedGrants(tmp_path / "home", PATIENT, clock=lambda: ISSUED, random_bytes=pinned)
    one = registry.reserve(DOCTOR.did, EXPIRES, grant_id="urn:uuid:a")
    two = registry.reserve(DOCTOR.did, EXPIRES, grant_id="urn:uuid:b")
    assert one.index == 7
    assert two.index == 0x10009 % LIST_SIZE  # the repeated draw of 7 was skipped
    assert one.list_url == two.list_url


def test_wallet_files_are_private(registry: IssuedGrants) -> None:
    issue(registry)
    home = registry.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "status").stat().st_mode) == 0o700
    for path in [home / "grants.sqlite", *(home / "status").glob("*.json")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    with sqlite3.connect(home / "grants.sqlite") as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(grants)")}
    # v2: who and until when are sealed; only the slot and its revoked flag stay plain
    assert columns == {"grant_id", "list_no", "status_index", "revoked", "state", "sealed"}


def test_status_file_follows_revocations(registry: IssuedGrants, tmp_path: Path) -> None:
    grant = issue(registry)
    row = registry.list_grants()[0]
    path = registry.home / "status" / "1.json"
    assert row["status_list"] == path.resolve().as_uri()
    entry = statuslist.status_entry(row["status_list"], row["status_index"])
    assert not statuslist.check_status(entry, json.loads(path.read_text()), PATIENT.did)
    registry.revoke(grant.grant_id)
    assert statuslist.check_status(entry, json.loads(path.read_text()), PATIENT.did)
    published = registry.publish(tmp_path / "site")
    assert [p.name for p in published] == ["1.json"]
    assert json.loads(published[0].read_text())["id"] == row["status_list"]


def test_configured_https_base(tmp_path: Path) -> None:
    registry = IssuedGrants(
        tmp_path / "home",
        PATIENT,
        status_base_url="https://example.org/hw/status",
        clock=lambda: ISSUED,
    )
    issue(registry)
    assert registry.list_grants()[0]["status_list"] == "https://example.org/hw/status/1.json"


@pytest.mark.parametrize(
    "base", ["http://example.org/", "ftp://example.org/", "https://", "https://x.org/?a=1"]
)
def test_bad_base_urls(base: str) -> None:
    with pytest.raises(UsageError):
        normalize_base_url(base)


def test_audit_entries_hold_ids_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    audit = AuditLog(home, PATIENT, clock=lambda: ISSUED)
    registry = IssuedGrants(home, PATIENT, audit=audit, clock=lambda: ISSUED)
    grant = issue(registry)
    registry.revoke(grant.grant_id)
    registry.revoke(grant.grant_id)  # already revoked: no second entry
    entries = audit.read()
    assert [e["event"] for e in entries] == ["grant.issued", "grant.revoked"]
    assert entries[0]["details"]["grant_id"] == grant.grant_id
    # the entries carry base64 signatures, so a short word counts only standing alone
    assert leaked(["second opinion on knee MRI", "knee", "labs.json", "scan.pdf", "Bundle"], audit.path.read_text()) == []
    assert audit.verify_chain().ok


def test_expired_reservation_time_is_kept(registry: IssuedGrants) -> None:
    issue(registry)
    assert registry.list_grants(now=EXPIRES - timedelta(seconds=1))[0]["status"] == "active"
