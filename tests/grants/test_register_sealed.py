"""The grant register at rest: recipients, expiries, kinds and studies are sealed per row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from grant_helpers import DOCTOR, EXPIRES, ISSUED, PATIENT

from healthwallet.errors import VerificationError
from healthwallet.issued import IssuedGrants
from healthwallet.keys import Identity

STUDY = "NCT-MARKER-ONCOLOGY-77"


def _register(home: Path, identity: Identity = PATIENT) -> IssuedGrants:
    return IssuedGrants(home, identity, clock=lambda: ISSUED)


def test_register_rows_at_rest_hide_recipient_expiry_and_study(tmp_path: Path) -> None:
    registry = _register(tmp_path / "home")
    grant = registry.reserve(DOCTOR.did, EXPIRES)
    registry.confirm(grant)
    consent = registry.reserve(DOCTOR.did, EXPIRES)
    registry.confirm_consent(consent, STUDY)
    registry.revoke(grant.grant_id)
    raw = b"".join(p.read_bytes() for p in (tmp_path / "home").glob("grants.sqlite*"))
    expiry = EXPIRES.strftime("%Y-%m-%dT%H:%M:%S").encode()
    for secret in (DOCTOR.did.encode(), STUDY.encode(), expiry, b"consent"):
        assert secret not in raw
    listed = {row["grant_id"]: row for row in registry.list_grants()}
    assert listed[grant.grant_id]["status"] == "revoked"
    assert listed[consent.grant_id]["kind"] == "consent"
    assert listed[consent.grant_id]["recipient"] == DOCTOR.did


def test_register_row_moved_to_another_grant_is_refused(tmp_path: Path) -> None:
    registry = _register(tmp_path / "home")
    first, second = (registry.reserve(DOCTOR.did, EXPIRES) for _ in range(2))
    registry.confirm(first)
    registry.confirm(second)
    with sqlite3.connect(registry.db_path) as db:
        sealed = db.execute(
            "SELECT sealed FROM grants WHERE grant_id = ?", (first.grant_id,)
        ).fetchone()[0]
        db.execute("UPDATE grants SET sealed = ? WHERE grant_id = ?", (sealed, second.grant_id))
    with pytest.raises(VerificationError) as caught:
        registry.list_grants()
    assert caught.value.exit_code == 1 and DOCTOR.did not in caught.value.message


def test_register_rows_sealed_before_a_key_rotation_still_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = _register(home)
    old = before.reserve(DOCTOR.did, EXPIRES)
    before.confirm(old)
    new_identity = Identity(b"\x0b" * 32)
    after = IssuedGrants(home, new_identity, clock=lambda: ISSUED, retired=[PATIENT])
    assert [row["recipient"] for row in after.list_grants()] == [DOCTOR.did]
    assert after.revoke(old.grant_id)["revoked"] is True
