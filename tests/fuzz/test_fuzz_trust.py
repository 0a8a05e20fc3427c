"""Class: the trust parsers (presentations, clinician credentials, trust lists) never crash,
hang or exit 70 on damaged input (in-process, as test_fuzz_parsers.py)."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings

from healthwallet import keys
from healthwallet.statuslist import load_credential_document, status_entry
from healthwallet.trust.clinician import clinician_credential, sign_clinician_credential
from healthwallet.trust.presentation import make_presentation
from healthwallet.trust.trustlist import TrustedIssuer, TrustStore, sign_trust_list
from healthwallet.trust.vouch import check_presentation

from .conftest import examples
from .mutate import expect_documented, json_file

HOSPITAL = keys.Identity(bytes(range(4, 36)))
DOCTOR = keys.Identity(bytes(range(1, 33)))
PATIENT = keys.Identity(bytes(range(32)))
OPERATOR = keys.Identity(bytes(range(3, 35)))
NOW = datetime.now(UTC).replace(microsecond=0)


def _staff() -> dict[str, Any] | str:
    unsigned = clinician_credential(
        credential_id="urn:uuid:5d7a3c10-8e2b-4f3a-9c1d-2b6e8f0a4c11", issuer=HOSPITAL.did,
        subject=DOCTOR.did, name="Dr Ana Costa", role="cardiologist", licence="12345",
        jurisdiction="PT", issued=NOW, expires=NOW + timedelta(days=30),
        status=status_entry("https://hospital.example.org/status/1.json", 7))
    return sign_clinician_credential(unsigned, HOSPITAL, "ldp", NOW)


def _read(data: bytes, what: str) -> dict[str, Any] | str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.json"
        path.write_bytes(data)
        return load_credential_document(str(path), what, from_user=True)


def test_fuzz_presentation_checked_by_grant() -> None:
    with tempfile.TemporaryDirectory() as home:
        store = TrustStore(Path(home), PATIENT)
        challenge = store.new_challenge(NOW)["challenge"]
        seed = make_presentation(DOCTOR, [_staff()], challenge=challenge, domain=PATIENT.did,
                                 fmt="ldp", now=NOW)

        @settings(max_examples=examples(60), deadline=None)
        @given(json_file(json.dumps(seed).encode()))
        def run(data: bytes) -> None:
            # An untrusted issuer: nothing is fetched, every other check runs.
            expect_documented(lambda: check_presentation(
                _read(data, "presentation"), recipient=DOCTOR.did, patient=PATIENT.did,
                store=store, now=NOW, skew=timedelta(seconds=60), transport=None))

        run()


def test_fuzz_trust_list_import() -> None:
    seed = sign_trust_list(
        OPERATOR, "PT clinicians",
        [TrustedIssuer(HOSPITAL.did, "Hospital", ("ClinicianCredential",), "", "")],
        now=NOW - timedelta(hours=1), expires=NOW + timedelta(days=30))
    with tempfile.TemporaryDirectory() as home:
        store = TrustStore(Path(home), PATIENT)
        store.add(OPERATOR.did, "Registry", ["TrustList"], NOW)

        @settings(max_examples=examples(60), deadline=None)
        @given(json_file(json.dumps(seed).encode()))
        def run(data: bytes) -> None:
            expect_documented(lambda: store.import_list(
                _read(data, "trust list"), NOW, timedelta(seconds=60)))

        run()
