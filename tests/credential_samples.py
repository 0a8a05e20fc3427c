"""Fixed identities and a sample grant credential shared by the credential and interop tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from healthwallet import keys
from healthwallet.contexts import CONSENT_CONTEXT, GRANT_CONTEXT
from healthwallet.statuslist import status_entry

PATIENT = keys.Identity(bytes(range(32)))
DOCTOR = keys.Identity(bytes(range(1, 33)))
MALLORY = keys.Identity(bytes(range(2, 34)))
RESEARCH = keys.Identity(bytes(range(3, 35)))
ISSUED = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
LIST_URL = "https://status.example.org/healthwallet/1.json"


def grant_credential(
    issuer: keys.Identity = PATIENT, *, index: int = 41, **changes: Any
) -> dict[str, Any]:
    """An unsigned HealthRecordAccessGrant from ``issuer`` to DOCTOR, status slot ``index``."""
    credential: dict[str, Any] = {
        "@context": copy.deepcopy(GRANT_CONTEXT),
        "id": "urn:uuid:0b5c1c9e-51f4-4f59-9d53-2d1b3d0f2a11",
        "type": ["VerifiableCredential", "HealthRecordAccessGrant"],
        "issuer": issuer.did,
        "issuanceDate": "2024-03-01T09:00:00Z",
        "expirationDate": "2024-03-08T09:00:00Z",
        "credentialSubject": {
            "id": DOCTOR.did,
            "purpose": "follow-up of the March results",
            "records": [
                {
                    "id": "3fa2b1c09d8e7f61",
                    "mediaType": "application/fhir+json",
                    "commitment": "ab" * 32,
                },
                {"id": "00c0ffee00c0ffee", "mediaType": "application/pdf", "commitment": "cd" * 32},
            ],
            "envelopeDigest": "ef" * 32,
            "anchors": [{"root": "12" * 32, "path": ["34" * 32], "receipt": {"n": 1}}],
        },
        "credentialStatus": status_entry(LIST_URL, index),
    }
    credential.update(changes)
    return credential


def consent_credential(**changes: Any) -> dict[str, Any]:
    """An unsigned ResearchDataConsent from PATIENT to RESEARCH, status slot 42."""
    credential: dict[str, Any] = {
        "@context": copy.deepcopy(CONSENT_CONTEXT),
        "id": "urn:uuid:7c2f3b0e-9a41-4d0c-8f7e-0d1c2b3a4f5e",
        "type": ["VerifiableCredential", "ResearchDataConsent"],
        "issuer": PATIENT.did,
        "issuanceDate": "2024-03-01T09:00:00Z",
        "expirationDate": "2025-03-01T09:00:00Z",
        "credentialSubject": {
            "id": RESEARCH.did,
            "study": "urn:study:cardio-2024",
            "purpose": "observational cardiology study",
            "dataCategories": ["Condition", "Observation"],
            "policy": "safe-harbor",
            "policyDigest": "56" * 32,
            "datasetDigest": "78" * 32,
        },
        "credentialStatus": status_entry(LIST_URL, 42),
    }
    credential.update(changes)
    return credential


def forge_jwt_signature(token: str) -> str:
    """``token`` with its signature replaced by MALLORY's over the same header and payload."""
    head, body, _ = token.split(".")
    return head + "." + body + "." + keys.b64url(MALLORY.sign((head + "." + body).encode()))
