"""healthwallet.trust without the CLI: presentation binding, challenges on an injected clock,
trust lists that cannot widen themselves, and credentials that are not quite ClinicianCredentials.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from credential_samples import DOCTOR, ISSUED, MALLORY, PATIENT, RESEARCH

from healthwallet import keys
from healthwallet.contexts import CREDENTIALS_V1
from healthwallet.errors import BadInputError, UsageError, VerificationError
from healthwallet.presentations import sign_presentation
from healthwallet.statuslist import status_entry
from healthwallet.trust.clinician import (
    ClinicianClaims,
    HeldCredentials,
    checked_proof,
    clinician_credential,
    sign_clinician_credential,
)
from healthwallet.trust.presentation import challenge_of, make_presentation, verify_presentation
from healthwallet.trust.trustlist import TrustedIssuer, TrustStore, read_trust_list, sign_trust_list
from healthwallet.trust.vouch import NotVouchedError, check_presentation

HOSPITAL = keys.Identity(bytes(range(4, 36)))
NOW = datetime(2024, 3, 2, 12, 0, tzinfo=UTC)


def staff(subject: str = DOCTOR.did, **changes: Any) -> dict[str, Any]:
    credential = clinician_credential(
        credential_id="urn:uuid:5d7a3c10-8e2b-4f3a-9c1d-2b6e8f0a4c11",
        issuer=HOSPITAL.did,
        subject=subject,
        name="Dr Ana Costa",
        role="cardiologist",
        licence="12345",
        jurisdiction="PT",
        issued=ISSUED,
        expires=ISSUED + timedelta(days=365),
        status=status_entry("https://hospital.example.org/status/1.json", 7),
    )
    credential.update(changes)
    return credential


def signed_staff(**changes: Any) -> dict[str, Any]:
    signed = sign_clinician_credential(staff(**changes), HOSPITAL, "ldp", ISSUED)
    assert isinstance(signed, dict)
    return signed


@pytest.mark.parametrize("fmt", ["ldp", "jwt"])
def test_presentation_binds_holder_challenge_and_domain(fmt: str) -> None:
    vp = make_presentation(
        DOCTOR, [signed_staff()], challenge="c1", domain=PATIENT.did, fmt=fmt, now=NOW
    )  # type: ignore[arg-type]
    assert challenge_of(vp) == "c1"
    assert len(verify_presentation(vp, holder=DOCTOR.did, challenge="c1", domain=PATIENT.did)) == 1
    with pytest.raises(VerificationError, match="another challenge or domain"):
        verify_presentation(vp, holder=DOCTOR.did, challenge="c2", domain=PATIENT.did)
    with pytest.raises(VerificationError, match="another challenge or domain"):
        verify_presentation(vp, holder=DOCTOR.did, challenge="c1", domain=RESEARCH.did)
    with pytest.raises(VerificationError, match="someone other than the grant's recipient"):
        verify_presentation(vp, holder=MALLORY.did, challenge="c1", domain=PATIENT.did)


def test_presentation_signed_by_a_key_other_than_the_holders_is_refused() -> None:
    unsigned = {
        "@context": [CREDENTIALS_V1],
        "type": ["VerifiablePresentation"],
        "holder": MALLORY.did,
        "verifiableCredential": [signed_staff()],
    }
    vp = sign_presentation(
        unsigned, MALLORY, challenge="c1", domain=PATIENT.did, fmt="ldp", now=NOW
    )
    assert isinstance(vp, dict)
    vp["holder"] = DOCTOR.did  # Mallory claims to be the doctor, with her own proof
    with pytest.raises(VerificationError, match="does not belong to the holder"):
        verify_presentation(vp, holder=DOCTOR.did, challenge="c1", domain=PATIENT.did)


def test_presentation_with_its_holder_swapped_after_signing_is_refused() -> None:
    vp = make_presentation(
        DOCTOR, [signed_staff()], challenge="c1", domain=PATIENT.did, fmt="ldp", now=NOW
    )
    assert isinstance(vp, dict)
    swapped = copy.deepcopy(vp)
    swapped["holder"] = MALLORY.did
    with pytest.raises(VerificationError):
        verify_presentation(swapped, holder=MALLORY.did, challenge="c1", domain=PATIENT.did)


def test_presentation_with_an_extra_member_is_refused() -> None:
    vp = make_presentation(
        DOCTOR, [signed_staff()], challenge="c1", domain=PATIENT.did, fmt="ldp", now=NOW
    )
    assert isinstance(vp, dict)
    with pytest.raises(VerificationError, match="members or @context"):
        verify_presentation(
            {**vp, "id": "urn:x"}, holder=DOCTOR.did, challenge="c1", domain=PATIENT.did
        )


def test_clinician_credential_with_an_extra_subject_member_is_refused() -> None:
    credential = staff()
    credential["credentialSubject"]["speciality"] = "all of them"
    with pytest.raises(BadInputError):
        ClinicianClaims.from_credential(credential)


def test_tampered_clinician_credential_fails_its_proof() -> None:
    tampered = signed_staff()
    tampered["credentialSubject"]["licenceNumber"] = "99999"
    with pytest.raises(VerificationError, match="proof does not verify"):
        checked_proof(tampered)


def test_held_credentials_refuse_someone_elses(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="someone else"):
        HeldCredentials(tmp_path, MALLORY).store(signed_staff())
    held = HeldCredentials(tmp_path, DOCTOR)
    assert held.store(signed_staff()).licence == "12345"
    assert b"12345" not in (tmp_path / "credentials.sealed").read_bytes()


def test_challenge_expires_on_the_injected_clock_and_is_spent_once(tmp_path: Path) -> None:
    store = TrustStore(tmp_path, PATIENT)
    nonce = store.new_challenge(NOW, timedelta(hours=1))["challenge"]
    store.open_challenge(nonce, NOW + timedelta(minutes=59))
    with pytest.raises(VerificationError, match="expired"):
        store.open_challenge(nonce, NOW + timedelta(hours=1))
    store.use_challenge(nonce)
    with pytest.raises(VerificationError, match="no open challenge"):
        store.open_challenge(nonce, NOW)


def _check_at_now(vp: Any, store: TrustStore) -> None:
    # transport=None would be the strict fetcher; these cases are refused before any fetch.
    check_presentation(
        vp,
        recipient=DOCTOR.did,
        patient=PATIENT.did,
        store=store,
        now=NOW,
        skew=timedelta(0),
        transport=None,
    )


def test_unknown_issuer_is_refused_before_its_status_list_is_fetched(tmp_path: Path) -> None:
    store = TrustStore(tmp_path, PATIENT)
    nonce = store.new_challenge(NOW)["challenge"]
    vp = make_presentation(
        DOCTOR, [signed_staff()], challenge=nonce, domain=PATIENT.did, fmt="ldp", now=NOW
    )
    with pytest.raises(NotVouchedError, match="which you do not trust"):
        _check_at_now(vp, store)


def test_a_trust_list_cannot_hand_out_the_right_to_publish_lists(tmp_path: Path) -> None:
    entries = [
        TrustedIssuer(HOSPITAL.did, "Hospital", ("ClinicianCredential", "TrustList"), "", ""),
        TrustedIssuer(MALLORY.did, "Another operator", ("TrustList",), "", ""),
    ]
    signed = sign_trust_list(
        RESEARCH, "list", entries, now=ISSUED, expires=ISSUED + timedelta(days=30)
    )
    assert dict(read_trust_list(signed).issuers) == {
        HOSPITAL.did: ("Hospital", ("ClinicianCredential",))
    }
    store = TrustStore(tmp_path, PATIENT)
    store.add(RESEARCH.did, "Registry", ["TrustList"], NOW)
    store.import_list(signed, ISSUED + timedelta(days=1), timedelta(0))
    assert store.trusted(HOSPITAL.did, "ClinicianCredential") is not None
    assert store.trusted(HOSPITAL.did, "TrustList") is None
    assert store.trusted(MALLORY.did, "TrustList") is None


def test_an_expired_trust_list_is_refused(tmp_path: Path) -> None:
    store = TrustStore(tmp_path, PATIENT)
    store.add(RESEARCH.did, "Registry", ["TrustList"], NOW)
    signed = sign_trust_list(RESEARCH, "list", [], now=ISSUED, expires=ISSUED + timedelta(days=1))
    with pytest.raises(VerificationError, match="expired"):
        store.import_list(signed, ISSUED + timedelta(days=2), timedelta(0))


@pytest.mark.parametrize("withdraw", ["remove", "demote"])
def test_issuers_from_an_operator_no_longer_trusted_for_lists_are_not_trusted(
    tmp_path: Path, withdraw: str
) -> None:
    entries = [TrustedIssuer(HOSPITAL.did, "Hospital", ("ClinicianCredential",), "", "")]
    signed = sign_trust_list(RESEARCH, "list", entries, now=ISSUED,
                             expires=ISSUED + timedelta(days=30))
    store = TrustStore(tmp_path, PATIENT)
    store.add(RESEARCH.did, "Registry", ["TrustList"], NOW)
    store.import_list(signed, ISSUED + timedelta(days=1), timedelta(0))
    assert store.trusted(HOSPITAL.did, "ClinicianCredential") is not None
    if withdraw == "remove":
        store.remove(RESEARCH.did)
    else:
        store.add(RESEARCH.did, "Registry", ["ClinicianCredential"], NOW)
    assert store.trusted(HOSPITAL.did, "ClinicianCredential") is None
    assert HOSPITAL.did not in [issuer.did for issuer in store.issuers()]


def test_issuer_trusted_only_through_an_expired_trust_list_no_longer_vouches(
    tmp_path: Path,
) -> None:
    entries = [TrustedIssuer(HOSPITAL.did, "Hospital", ("ClinicianCredential",), "", "")]
    signed = sign_trust_list(
        RESEARCH, "list", entries, now=ISSUED, expires=ISSUED + timedelta(hours=12)
    )
    store = TrustStore(tmp_path, PATIENT)
    store.add(RESEARCH.did, "Registry", ["TrustList"], ISSUED)
    store.import_list(signed, ISSUED + timedelta(hours=1), timedelta(0))
    nonce = store.new_challenge(NOW)["challenge"]
    vp = make_presentation(
        DOCTOR, [signed_staff()], challenge=nonce, domain=PATIENT.did, fmt="ldp", now=NOW
    )
    # NOW is a day after the list expired: its operator may have dropped the hospital since.
    with pytest.raises(NotVouchedError, match="trust list that expired"):
        _check_at_now(vp, store)


@pytest.mark.parametrize("payload", [b"[" * 100_000, b"{\"a\":" * 50_000], ids=["array", "object"])
def test_presentation_jwt_nested_too_deeply_is_bad_input_not_a_crash(payload: bytes) -> None:
    token = "e30." + keys.b64url(payload) + ".AA"
    with pytest.raises(BadInputError, match="carries no challenge"):
        challenge_of(token)
