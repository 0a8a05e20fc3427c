"""Outside verifiers accept clinician credentials and presentations, and reject tampered ones.

Through tests/node/interop/verify-vc.mjs (see test_node_verifiers.py): Digital Bazaar
@digitalbazaar/vc checks ClinicianCredentials, TrustedIssuerLists and presentations offline,
including the presentation's challenge and domain and each embedded credential's status;
did-jwt-vc (and jose) check the JWT forms.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from credential_samples import DOCTOR, ISSUED, PATIENT, RESEARCH, forge_jwt_signature
from test_node_verifiers import REVOKED_INDEX, change_jwt_payload, run_verifiers

from healthwallet import keys
from healthwallet.statuslist import StatusList, status_entry, status_list_credential
from healthwallet.trust.clinician import clinician_credential, sign_clinician_credential
from healthwallet.trust.presentation import make_presentation
from healthwallet.trust.trustlist import TrustedIssuer, sign_trust_list

HOSPITAL = keys.Identity(bytes(range(4, 36)))
STAFF_LIST = "https://hospital.example.org/status/1.json"
CHALLENGE = "l0ooLRzvH3c9tQ2S-kqJxA"
PRESENTED = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def staff_credential(index: int = 7) -> dict[str, Any]:
    return clinician_credential(
        credential_id="urn:uuid:5d7a3c10-8e2b-4f3a-9c1d-2b6e8f0a4c11",
        issuer=HOSPITAL.did,
        subject=DOCTOR.did,
        name="Dr Ana Costa",
        role="cardiologist",
        licence="12345",
        jurisdiction="PT",
        issued=ISSUED,
        expires=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        status=status_entry(STAFF_LIST, index),
    )


def build_cases() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    bits = StatusList()
    bits.set(REVOKED_INDEX)
    status_vc = status_list_credential(STAFF_LIST, bits, HOSPITAL, ISSUED)

    ldp = sign_clinician_credential(staff_credential(), HOSPITAL, "ldp", ISSUED)
    assert isinstance(ldp, dict)
    tampered = copy.deepcopy(ldp)
    tampered["credentialSubject"]["licenceNumber"] = "99999"
    revoked = sign_clinician_credential(staff_credential(REVOKED_INDEX), HOSPITAL, "ldp", ISSUED)
    jwt = sign_clinician_credential(staff_credential(), HOSPITAL, "jwt", ISSUED)
    assert isinstance(jwt, str)
    trust_list = sign_trust_list(
        RESEARCH,
        "PT clinicians",
        [TrustedIssuer(HOSPITAL.did, "Hospital de Santa Maria", ("ClinicianCredential",), "", "")],
        now=ISSUED,
        expires=datetime(2025, 1, 1, tzinfo=UTC),
    )

    def vp(credential: dict[str, Any] | str, fmt: Any) -> dict[str, Any] | str:
        return make_presentation(
            DOCTOR, [credential], challenge=CHALLENGE, domain=PATIENT.did, fmt=fmt, now=PRESENTED
        )

    vp_ldp = vp(ldp, "ldp")
    assert isinstance(vp_ldp, dict)
    vp_ldp_tampered = copy.deepcopy(vp_ldp)
    vp_ldp_tampered["verifiableCredential"][0]["credentialSubject"]["role"] = "surgeon"
    vp_jwt = vp(jwt, "jwt")
    assert isinstance(vp_jwt, str)

    bound = {"challenge": CHALLENGE, "domain": PATIENT.did}
    cases: list[dict[str, Any]] = [
        {"name": "clinician-ldp", "format": "ldp", "credential": ldp},
        {"name": "clinician-ldp-tampered", "format": "ldp", "credential": tampered},
        {"name": "clinician-ldp-revoked", "format": "ldp", "credential": revoked},
        {"name": "trust-list-ldp", "format": "ldp-list", "credential": trust_list},
        {"name": "clinician-jwt", "format": "jwt", "credential": jwt},
        {
            "name": "clinician-jwt-tampered",
            "format": "jwt",
            "credential": change_jwt_payload(jwt, ("vc", "credentialSubject", "role"), "surgeon"),
        },
        {"name": "clinician-jwt-forged", "format": "jwt", "credential": forge_jwt_signature(jwt)},
        {"name": "vp-ldp", "format": "ldp-vp", "credential": vp_ldp, **bound},
        {"name": "vp-ldp-other-challenge", "format": "ldp-vp", "credential": vp_ldp,
         **bound, "challenge": "another-nonce"},
        {"name": "vp-ldp-other-domain", "format": "ldp-vp", "credential": vp_ldp,
         **bound, "domain": RESEARCH.did},
        {"name": "vp-ldp-tampered", "format": "ldp-vp", "credential": vp_ldp_tampered, **bound},
        {"name": "vp-jwt", "format": "jwt-vp", "credential": vp_jwt, **bound},
        {"name": "vp-jwt-other-challenge", "format": "jwt-vp", "credential": vp_jwt,
         **bound, "challenge": "another-nonce"},
        {"name": "vp-jwt-other-domain", "format": "jwt-vp", "credential": vp_jwt,
         **bound, "domain": RESEARCH.did},
        {"name": "vp-jwt-tampered", "format": "jwt-vp",
         "credential": change_jwt_payload(vp_jwt, ("nonce",), "another-nonce"), **bound},
    ]
    for case in cases:  # a trust list has no status: checked as a plain ldp credential
        if case["format"] == "ldp-list":
            case["format"] = "ldp"
    return cases, {STAFF_LIST: status_vc}


DB = "@digitalbazaar/vc"


@pytest.fixture(scope="module")
def verdicts() -> dict[tuple[str, str], dict[str, Any]]:
    return run_verifiers(*build_cases())


@pytest.mark.integration
@pytest.mark.parametrize("name", ["clinician-ldp", "trust-list-ldp", "vp-ldp"])
def test_digital_bazaar_accepts(verdicts: dict[tuple[str, str], Any], name: str) -> None:
    verdict = verdicts[(name, DB)]
    assert verdict["verified"], verdict["error"]
    if name != "trust-list-ldp":
        assert verdict["revoked"] is False  # it read the hospital's status list itself


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("clinician-ldp-tampered", "Invalid signature"),
        ("clinician-ldp-revoked", "not verified"),
        ("vp-ldp-other-challenge", "The challenge is not as expected"),
        ("vp-ldp-other-domain", "The domain is not as expected"),
        ("vp-ldp-tampered", "Invalid signature"),
    ],
)
def test_digital_bazaar_rejects(
    verdicts: dict[tuple[str, str], Any], name: str, reason: str
) -> None:
    verdict = verdicts[(name, DB)]
    assert not verdict["verified"] and reason in verdict["error"]
    if name == "clinician-ldp-revoked":
        assert verdict["revoked"] is True


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "verifier"),
    [("clinician-jwt", "did-jwt-vc"), ("clinician-jwt", "jose"), ("vp-jwt", "did-jwt-vc")],
)
def test_jwt_verifiers_accept(
    verdicts: dict[tuple[str, str], Any], name: str, verifier: str
) -> None:
    verdict = verdicts[(name, verifier)]
    assert verdict["verified"], verdict["error"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "verifier", "reason"),
    [
        ("clinician-jwt-tampered", "did-jwt-vc", "invalid_signature"),
        ("clinician-jwt-tampered", "jose", "signature verification failed"),
        ("clinician-jwt-forged", "did-jwt-vc", "invalid_signature"),
        ("clinician-jwt-forged", "jose", "signature verification failed"),
        ("vp-jwt-other-challenge", "did-jwt-vc", "mandatory challenge"),
        ("vp-jwt-other-domain", "did-jwt-vc", "audience does not match"),
        ("vp-jwt-tampered", "did-jwt-vc", "invalid_signature"),
    ],
)
def test_jwt_verifiers_reject(
    verdicts: dict[tuple[str, str], Any], name: str, verifier: str, reason: str
) -> None:
    verdict = verdicts[(name, verifier)]
    assert not verdict["verified"] and reason in verdict["error"]
