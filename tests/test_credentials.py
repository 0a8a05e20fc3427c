"""healthwallet.credentials: issuing and verifying VCs (ldp and jwt) with didkit."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from credential_samples import (
    DOCTOR,
    ISSUED,
    MALLORY,
    PATIENT,
    consent_credential,
    forge_jwt_signature,
    grant_credential,
)

from healthwallet import credentials, keys
from healthwallet.contexts import (
    BUNDLED_CONTEXT_URLS,
    CONSENT_CONTEXT,
    CREDENTIALS_V1,
    GRANT_CONTEXT,
    STATUS_LIST_2021_V1,
    VOCAB,
)
from healthwallet.credentials import ProofResult, issue_credential, verify_proof
from healthwallet.errors import BadInputError, UsageError

ROOT = Path(__file__).resolve().parent.parent


def b64json(value: dict[str, Any]) -> str:
    return keys.b64url(json.dumps(value, separators=(",", ":")).encode())


def sign_jwt(
    header: dict[str, Any], payload: dict[str, Any], signer: keys.Identity = PATIENT
) -> str:
    """A JWT made without didkit (to reach checks didkit's own tokens never trip)."""
    signing_input = b64json(header) + "." + b64json(payload)
    return signing_input + "." + keys.b64url(signer.sign(signing_input.encode()))


@pytest.fixture(scope="module")
def signed_grant() -> dict[str, Any]:
    return issue_credential(grant_credential(), PATIENT, "ldp", ISSUED)


@pytest.fixture(scope="module")
def signed_grant_jwt() -> str:
    return issue_credential(grant_credential(), PATIENT, "jwt", ISSUED)


# -- issue + verify ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [grant_credential, consent_credential], ids=["grant", "consent"])
def test_ldp_round_trip(make: Any) -> None:
    unsigned = make()
    signed = issue_credential(unsigned, PATIENT, "ldp", ISSUED)
    proof = signed["proof"]
    assert proof["type"] == "Ed25519Signature2018"
    assert proof["proofPurpose"] == "assertionMethod"
    assert proof["verificationMethod"] == PATIENT.verification_method
    assert proof["created"] == "2024-03-01T09:00:00Z"  # from `now`, not the system clock
    assert {k: v for k, v in signed.items() if k != "proof"} == unsigned

    result = verify_proof(signed)
    assert result == ProofResult(True, signed, [], "ldp", [])


@pytest.mark.parametrize("make", [grant_credential, consent_credential], ids=["grant", "consent"])
def test_jwt_round_trip(make: Any) -> None:
    unsigned = make()
    token = issue_credential(unsigned, PATIENT, "jwt", ISSUED)
    assert isinstance(token, str) and token.count(".") == 2
    header = json.loads(keys.b64url_decode(token.split(".")[0]))
    payload = json.loads(keys.b64url_decode(token.split(".")[1]))
    assert header["alg"] == "EdDSA"
    assert header["kid"] == PATIENT.verification_method  # external verifiers need the kid
    assert payload["iss"] == PATIENT.did
    assert payload["sub"] == unsigned["credentialSubject"]["id"]
    assert payload["jti"] == unsigned["id"]
    assert payload["nbf"] == datetime(2024, 3, 1, 9, 0, tzinfo=UTC).timestamp()

    result = verify_proof(token)
    assert result.ok, result.errors
    assert result.fmt == "jwt"
    assert result.credential == unsigned  # decoded back to the Data Model form


def test_issue_defaults_to_now_and_ldp() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    signed = issue_credential(grant_credential(), PATIENT)
    created = datetime.fromisoformat(signed["proof"]["created"].replace("Z", "+00:00"))
    assert before <= created <= datetime.now(UTC)


def test_verify_works_from_async_code(signed_grant: dict[str, Any]) -> None:
    async def inside_a_loop() -> ProofResult:
        return verify_proof(signed_grant)

    assert asyncio.run(inside_a_loop()).ok


def test_verify_works_from_threads(signed_grant: dict[str, Any], signed_grant_jwt: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(verify_proof, [signed_grant, signed_grant_jwt] * 4))
    assert all(r.ok for r in results)


# -- time is not judged here ---------------------------------------------------------------------


def test_verify_does_not_check_expiry_ldp() -> None:
    expired = grant_credential(
        expirationDate="2001-01-02T00:00:00Z", issuanceDate="2001-01-01T00:00:00Z"
    )
    signed = issue_credential(expired, PATIENT, "ldp", datetime(2001, 1, 1, tzinfo=UTC))
    assert verify_proof(signed).ok


def test_verify_does_not_check_expiry_jwt() -> None:
    # didkit refuses expired JWTs on the system clock; the signature is still checked.
    expired = grant_credential(
        expirationDate="2001-01-02T00:00:00Z", issuanceDate="2001-01-01T00:00:00Z"
    )
    token = issue_credential(expired, PATIENT, "jwt")
    result = verify_proof(token)
    assert result.ok, result.errors
    assert result.credential["expirationDate"] == "2001-01-02T00:00:00Z"
    assert any("expired" in w for w in result.warnings)


def test_verify_does_not_check_future_dates() -> None:
    # A proof `created` (and nbf) ahead of the verifier's clock: clock skew, judged elsewhere.
    later = datetime.now(UTC) + timedelta(days=3650)
    future = grant_credential(
        issuanceDate=later.strftime("%Y-%m-%dT%H:%M:%SZ"),
        expirationDate=(later + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert verify_proof(issue_credential(future, PATIENT, "ldp", later)).ok
    assert verify_proof(issue_credential(future, PATIENT, "jwt", later)).ok


def test_expired_jwt_with_bad_signature_fails() -> None:
    expired = grant_credential(
        expirationDate="2001-01-02T00:00:00Z", issuanceDate="2001-01-01T00:00:00Z"
    )
    forged = forge_jwt_signature(issue_credential(expired, PATIENT, "jwt"))
    result = verify_proof(forged)
    assert not result.ok
    assert result.errors == ["the JWT's signature does not verify"]


# -- tampering -----------------------------------------------------------------------------------

# Every term our contexts define must be inside the signature (an undefined or dropped term
# would not be), so changing any of them breaks the proof.
GRANT_PATHS = [
    ("credentialSubject", "purpose"),
    ("credentialSubject", "envelopeDigest"),
    ("credentialSubject", "records", 0, "id"),
    ("credentialSubject", "records", 0, "mediaType"),
    ("credentialSubject", "records", 1, "commitment"),
    ("credentialSubject", "anchors", 0, "root"),
    ("credentialSubject", "id"),
    ("credentialStatus", "statusListIndex"),
    ("credentialStatus", "statusListCredential"),
    ("credentialStatus", "statusPurpose"),
    ("expirationDate",),
    ("issuanceDate",),
    ("id",),
]
CONSENT_PATHS = [
    ("credentialSubject", "study"),
    ("credentialSubject", "purpose"),
    ("credentialSubject", "dataCategories", 0),
    ("credentialSubject", "policy"),
    ("credentialSubject", "policyDigest"),
    ("credentialSubject", "datasetDigest"),
]


def _replace(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for step in path[:-1]:
        target = target[step]
    old = target[path[-1]]
    if isinstance(old, str) and old.startswith(("did:", "urn:", "https:")):
        value = old + "0"  # keep IRIs well-formed
    elif isinstance(old, str) and old[:4].isdigit():
        value = "2024-03-09T09:00:00Z"
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize("path", GRANT_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_tampered_grant_fails(signed_grant: dict[str, Any], path: tuple[Any, ...]) -> None:
    result = verify_proof(_replace(signed_grant, path, "7"))
    assert not result.ok
    assert result.errors


@pytest.mark.parametrize("path", CONSENT_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_tampered_consent_fails(path: tuple[Any, ...]) -> None:
    signed = issue_credential(consent_credential(), PATIENT, "ldp", ISSUED)
    assert not verify_proof(_replace(signed, path, "Genomics")).ok


def test_reordered_records_fail(signed_grant: dict[str, Any]) -> None:
    # The records' order is the payload order, so it is signed (@list).
    changed = copy.deepcopy(signed_grant)
    changed["credentialSubject"]["records"].reverse()
    assert not verify_proof(changed).ok


def test_undefined_term_is_refused(signed_grant: dict[str, Any]) -> None:
    changed = copy.deepcopy(signed_grant)
    changed["credentialSubject"]["note"] = "an extra claim"
    assert not verify_proof(changed).ok


def test_issue_refuses_undefined_terms() -> None:
    unsigned = grant_credential()
    unsigned["credentialSubject"]["note"] = "an extra claim"
    with pytest.raises(UsageError, match="didkit cannot sign"):
        issue_credential(unsigned, PATIENT)


def test_swapped_issuer_fails() -> None:
    signed = issue_credential(grant_credential(issuer=MALLORY), MALLORY, "ldp", ISSUED)
    assert verify_proof(signed).ok
    signed["issuer"] = PATIENT.did  # Mallory's proof, patient's name
    result = verify_proof(signed)
    assert not result.ok
    assert "does not belong to the issuer" in result.errors[0]


def test_changed_signature_fails(signed_grant: dict[str, Any]) -> None:
    changed = copy.deepcopy(signed_grant)
    jws = changed["proof"]["jws"]
    changed["proof"]["jws"] = jws[:-6] + ("AAAAAA" if not jws.endswith("AAAAAA") else "BBBBBA")
    assert not verify_proof(changed).ok


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("proofPurpose", "authentication", "purpose"),
        ("type", "Ed25519Signature2020", "Ed25519Signature2018"),
        ("verificationMethod", MALLORY.verification_method, "does not belong"),
        ("verificationMethod", PATIENT.did + "#other", "not the issuer's key"),
    ],
)
def test_proof_shape_is_checked(
    signed_grant: dict[str, Any], member: str, value: str, message: str
) -> None:
    changed = copy.deepcopy(signed_grant)
    changed["proof"][member] = value
    result = verify_proof(changed)
    assert not result.ok
    assert message in result.errors[0]


def test_two_proofs_are_refused(signed_grant: dict[str, Any]) -> None:
    changed = copy.deepcopy(signed_grant)
    changed["proof"] = [changed["proof"], changed["proof"]]
    assert verify_proof(changed).errors == ["the credential must carry exactly one proof"]


def test_unsigned_credential_is_not_ok() -> None:
    result = verify_proof(grant_credential())
    assert result == ProofResult(False, grant_credential(), ["the credential has no proof"], "ldp")


def test_other_did_methods_are_not_resolved(signed_grant: dict[str, Any]) -> None:
    # did:web would make didkit fetch https://…/did.json; we never get that far.
    changed = copy.deepcopy(signed_grant)
    changed["issuer"] = "did:web:attacker.example"
    changed["proof"]["verificationMethod"] = "did:web:attacker.example#key-1"
    result = verify_proof(changed)
    assert not result.ok
    assert "not an Ed25519 did:key" in result.errors[0]


def test_tampered_jwt_payload_fails(signed_grant_jwt: str) -> None:
    head, body, sig = signed_grant_jwt.split(".")
    payload = json.loads(keys.b64url_decode(body))
    payload["vc"]["credentialSubject"]["purpose"] = "something else"
    result = verify_proof(head + "." + b64json(payload) + "." + sig)
    assert not result.ok


def test_tampered_jwt_signature_fails(signed_grant_jwt: str) -> None:
    assert not verify_proof(forge_jwt_signature(signed_grant_jwt)).ok


@pytest.mark.parametrize(
    ("header", "claims", "message"),
    [
        ({"alg": "none", "kid": PATIENT.verification_method}, {}, "alg"),
        ({"alg": "EdDSA"}, {}, "no kid"),
        ({"alg": "EdDSA", "kid": MALLORY.verification_method}, {}, "does not belong"),
        (
            {"alg": "EdDSA", "kid": PATIENT.verification_method, "crit": ["x"], "x": 1},
            {},
            "critical",
        ),
        ({"alg": "EdDSA", "kid": PATIENT.verification_method}, {"iss": MALLORY.did}, "iss"),
        ({"alg": "EdDSA", "kid": PATIENT.verification_method}, {"jti": "urn:uuid:x"}, "jti"),
        ({"alg": "EdDSA", "kid": PATIENT.verification_method}, {"sub": MALLORY.did}, "sub"),
        ({"alg": "EdDSA", "kid": PATIENT.verification_method}, {"exp": 1}, "exp"),
    ],
)
def test_jwt_header_and_claims_are_checked(
    header: dict[str, Any], claims: dict[str, Any], message: str
) -> None:
    vc = grant_credential()
    payload = {"iss": PATIENT.did, "vc": vc, **claims}
    result = verify_proof(sign_jwt(header, payload))
    assert not result.ok
    assert message in " ".join(result.errors)


def test_jwt_registered_claims_fill_the_credential() -> None:
    # VC Data Model 1.1 §6.3.1: a minimal vc claim is completed from iss/jti/sub/nbf/exp.
    vc = grant_credential()
    minimal = {
        k: v for k, v in vc.items() if k not in ("issuer", "id", "issuanceDate", "expirationDate")
    }
    minimal["credentialSubject"] = {k: v for k, v in vc["credentialSubject"].items() if k != "id"}
    payload = {
        "iss": PATIENT.did,
        "jti": vc["id"],
        "sub": DOCTOR.did,
        "nbf": 1709283600,
        "exp": 1709888400,
        "vc": minimal,
    }
    result = verify_proof(sign_jwt({"alg": "EdDSA", "kid": PATIENT.verification_method}, payload))
    assert result.ok, result.errors
    assert result.credential == vc


# -- not a credential ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        42,
        None,
        ["VerifiableCredential"],
        "",
        "hello",
        "a.b.c",
        '{"@context": []}',
        "e30.e30.e30",  # {} . {} . {}
        keys.b64url(b"[1]") + ".e30.AA",
        b64json({"alg": "EdDSA"}) + "." + b64json({"vc": "x"}) + ".AA",
        b64json({"alg": "EdDSA"}) + ".e30=.AA",  # padding is not base64url
        {},
        {"type": ["VerifiableCredential"]},
        {"@context": [CREDENTIALS_V1], "type": "Thing"},
    ],
)
def test_junk_is_bad_input(junk: Any) -> None:
    with pytest.raises(BadInputError):
        verify_proof(junk)


# -- issuing refuses what cannot work ------------------------------------------------------------


def test_issue_refuses_someone_elses_credential() -> None:
    with pytest.raises(UsageError, match="issuer"):
        issue_credential(grant_credential(issuer=MALLORY), PATIENT)


def test_issue_refuses_a_signed_credential(signed_grant: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="proof"):
        issue_credential(signed_grant, PATIENT)


def test_issue_refuses_unbundled_context_urls() -> None:
    context = [CREDENTIALS_V1, "https://w3id.org/security/suites/ed25519-2018/v1"]
    with pytest.raises(UsageError, match="nothing is fetched"):
        issue_credential(grant_credential(**{"@context": context}), PATIENT)
    with pytest.raises(UsageError, match="first @context"):
        issue_credential(grant_credential(**{"@context": [STATUS_LIST_2021_V1]}), PATIENT)


def test_issue_refuses_what_verify_would_refuse() -> None:
    context = copy.deepcopy(GRANT_CONTEXT)
    context[2]["extra"] = {"@id": VOCAB + "extra"}
    with pytest.raises(UsageError, match="not one healthwallet issues"):
        issue_credential(grant_credential(**{"@context": context}), PATIENT)
    with pytest.raises(UsageError, match="keywords"):
        issue_credential(grant_credential(**{"@type": "x"}), PATIENT)


def test_issue_refuses_naive_time_and_unknown_format() -> None:
    with pytest.raises(UsageError, match="time zone"):
        issue_credential(grant_credential(), PATIENT, "ldp", datetime(2024, 1, 1))
    with pytest.raises(UsageError, match="format"):
        issue_credential(grant_credential(), PATIENT, "cbor")  # type: ignore[call-overload]


def test_bundled_contexts_are_the_ones_didkit_has() -> None:
    # The contexts we reference by URL must be built into didkit (nothing is fetched).
    assert BUNDLED_CONTEXT_URLS == {CREDENTIALS_V1, STATUS_LIST_2021_V1}
    for context in (GRANT_CONTEXT, CONSENT_CONTEXT):
        assert [c for c in context if isinstance(c, str)] == [CREDENTIALS_V1, STATUS_LIST_2021_V1]
        inline = context[2]
        assert isinstance(inline, dict)
        assert inline["@protected"] is True
        for term, definition in inline.items():
            if not term.startswith("@"):
                assert definition["@id"].startswith(VOCAB), term


@pytest.mark.parametrize(
    ("message", "safe"),
    [
        (
            'invalid type: string "Jane Roe, HIV positive", expected struct at line 1',
            'invalid type: string "…", expected struct at line 1',
        ),
        ("unknown variant `Jane Roe`, expected one of", 'unknown variant "…", expected one of'),
        ("Invalid URI: Jane Roe at line 1 column 9", "Invalid URI at line 1 column 9"),
        ("Invalid URI: Jane Roe", "Invalid URI"),
    ],
)
def test_didkit_messages_lose_input(message: str, safe: str) -> None:
    assert credentials._safe_error(message) == safe


def test_didkit_parse_errors_are_results_not_crashes(signed_grant: dict[str, Any]) -> None:
    changed = copy.deepcopy(signed_grant)
    changed["credentialStatus"]["id"] = "Jane Roe"  # didkit's parser raises ValueError here
    result = verify_proof(changed)
    assert not result.ok
    assert "Jane" not in " ".join(result.errors)


# -- process lifetime ----------------------------------------------------------------------------


def test_didkit_is_imported_lazily() -> None:
    code = (
        "import sys, healthwallet.credentials, healthwallet.statuslist; "
        "print('didkit' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "False"


EXIT_SCRIPT = textwrap.dedent(
    """
    from datetime import UTC, datetime
    from healthwallet import credentials, keys
    from healthwallet.contexts import CONSENT_CONTEXT
    me = keys.Identity(bytes(32))
    vc = {"@context": CONSENT_CONTEXT, "type": ["VerifiableCredential", "ResearchDataConsent"],
          "issuer": me.did,
          "issuanceDate": "2024-01-01T00:00:00Z", "credentialSubject": {"id": me.did}}
    for fmt in ("ldp", "jwt"):
        assert credentials.verify_proof(credentials.issue_credential(vc, me, fmt)).ok
    """
)


def test_process_exits_cleanly_after_didkit_calls() -> None:
    # didkit 0.3.3 could crash at interpreter exit (exit 134/139) when a tokio thread was
    # still inside asyncio's call_soon_threadsafe; without the settle step in
    # credentials._call_didkit about 1 run in 10 (idle) to 2 in 3 (busy) crashed.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run_once(_: int) -> int:
        return subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT], env=env, capture_output=True, timeout=60
        ).returncode

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(run_once, range(12)))
    assert codes == [0] * 12


# -- the JSON a reader sees is the JSON that was signed ------------------------------------------


def test_edited_inline_context_fails() -> None:
    # Editing a term the document does not use leaves the signed graph as it was: didkit alone
    # still accepts the proof. verify_proof refuses the unknown context.
    unsigned = grant_credential()
    del unsigned["credentialSubject"]["anchors"]
    signed = issue_credential(unsigned, PATIENT, "ldp", ISSUED)
    assert verify_proof(signed).ok
    signed["@context"][2]["anchors"]["@id"] = VOCAB + "elsewhere"

    import didkit

    raw = credentials._call_didkit(lambda: didkit.verify_credential(json.dumps(signed), "{}"))
    assert json.loads(raw)["errors"] == []
    result = verify_proof(signed)
    assert not result.ok
    assert result.errors == ["the credential's @context is not one healthwallet issues"]


def test_swapped_terms_fail(signed_grant: dict[str, Any]) -> None:
    # Swap two string terms in both the context and the data: same graph, different JSON.
    changed = copy.deepcopy(signed_grant)
    inline, subject = changed["@context"][2], changed["credentialSubject"]
    inline["purpose"], inline["envelopeDigest"] = inline["envelopeDigest"], inline["purpose"]
    subject["purpose"], subject["envelopeDigest"] = subject["envelopeDigest"], subject["purpose"]
    result = verify_proof(changed)
    assert not result.ok
    assert "@context" in result.errors[0]


@pytest.mark.parametrize(
    "edit",
    [
        lambda vc: vc["credentialSubject"].update({"@id": vc["credentialSubject"].pop("id")}),
        lambda vc: vc["credentialSubject"].update({"@context": {"x": "urn:x"}}),
        lambda vc: vc["credentialSubject"].update({"@type": "Person"}),
    ],
    ids=["@id", "embedded @context", "@type"],
)
def test_keywords_inside_the_document_fail(signed_grant: dict[str, Any], edit: Any) -> None:
    changed = copy.deepcopy(signed_grant)
    edit(changed)
    result = verify_proof(changed)
    assert result.errors == ["the credential uses JSON-LD keywords inside the document"]


def test_json_literals_may_hold_any_keys() -> None:
    unsigned = grant_credential()
    unsigned["credentialSubject"]["anchors"] = [{"@weird": 1, "nested": {"@id": "x"}}]
    assert verify_proof(issue_credential(unsigned, PATIENT, "ldp", ISSUED)).ok


def test_signature_encoding_is_canonical(signed_grant: dict[str, Any]) -> None:
    # 64 bytes in 86 base64url characters leave 4 spare bits in the last one.
    changed = copy.deepcopy(signed_grant)
    head, _, sig = changed["proof"]["jws"].split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    changed["proof"]["jws"] = head + ".." + sig[:-1] + alphabet[last | 1]
    result = verify_proof(changed)
    assert not result.ok
    assert "canonical" in result.errors[0]
