"""Third-party verifiers accept healthwallet credentials (and reject tampered ones).

Runs tests/node/interop/verify-vc.mjs once per module with every case:
- ldp: Digital Bazaar @digitalbazaar/vc + Ed25519Signature2018, did:key via
  @digitalbazaar/did-method-key, contexts from @digitalbazaar/security-document-loader plus the
  StatusList2021 context (status-list-2021-v1.jsonld here); JSON-LD safe mode, no network.
  It also checks credentialStatus against our StatusList2021Credential.
- jwt: did-jwt-vc (key-did-resolver + did-resolver) and jose.

Needs node and tests/node/node_modules: skipped locally without them, a failure when CI=true.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import require
from credential_samples import (
    ISSUED,
    LIST_URL,
    MALLORY,
    PATIENT,
    consent_credential,
    forge_jwt_signature,
    grant_credential,
)

from healthwallet import keys
from healthwallet.credentials import issue_credential
from healthwallet.statuslist import StatusList, status_list_credential

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE.parent / "node"
SCRIPT = NODE_DIR / "interop" / "verify-vc.mjs"
STATUS_CONTEXT = HERE / "status-list-2021-v1.jsonld"

VERIFIER_NOW = "2024-03-02T12:00:00Z"  # inside every credential's window
REVOKED_INDEX = 3


def require_node() -> str:
    """node, with the test packages installed; skip locally, fail in CI."""
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("node on PATH")
    for package in ("@digitalbazaar/vc", "did-jwt-vc", "jose", "key-did-resolver"):
        if not (NODE_DIR / "node_modules" / package).is_dir():
            missing.append(f"tests/node/node_modules/{package} (run npm ci in tests/node)")
    require(not missing, ", ".join(missing))
    assert node is not None
    return node


def change_jwt_payload(
    token: str,
    path: tuple[str, ...] = ("vc", "credentialSubject", "purpose"),
    value: str = "something else",
) -> str:
    """``token`` with one payload claim (at ``path``) changed and the signature kept."""
    head, body, sig = token.split(".")
    payload = json.loads(keys.b64url_decode(body))
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return head + "." + keys.b64url(json.dumps(payload).encode()) + "." + sig


def build_cases() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    status_bits = StatusList()
    status_bits.set(REVOKED_INDEX)
    status_vc = status_list_credential(LIST_URL, status_bits, PATIENT, ISSUED)

    grant_ldp = issue_credential(grant_credential(), PATIENT, "ldp", ISSUED)
    tampered = copy.deepcopy(grant_ldp)
    tampered["credentialSubject"]["records"][0]["commitment"] = "00" * 32
    undefined = copy.deepcopy(grant_ldp)
    undefined["credentialSubject"]["note"] = "a term no context defines"
    by_mallory = issue_credential(grant_credential(MALLORY), MALLORY, "ldp", ISSUED)
    by_mallory["issuer"] = PATIENT.did
    grant_jwt = issue_credential(grant_credential(), PATIENT, "jwt", ISSUED)

    cases = [
        ("grant-ldp", "ldp", grant_ldp),
        (
            "grant-ldp-revoked",
            "ldp",
            issue_credential(grant_credential(index=REVOKED_INDEX), PATIENT, "ldp", ISSUED),
        ),
        ("grant-ldp-tampered", "ldp", tampered),
        ("grant-ldp-issuer-swapped", "ldp", by_mallory),
        ("grant-ldp-undefined-term", "ldp", undefined),
        ("consent-ldp", "ldp", issue_credential(consent_credential(), PATIENT, "ldp", ISSUED)),
        ("status-list-ldp", "ldp", status_vc),
        ("grant-jwt", "jwt", grant_jwt),
        ("grant-jwt-tampered", "jwt", change_jwt_payload(grant_jwt)),
        ("grant-jwt-forged", "jwt", forge_jwt_signature(grant_jwt)),
        ("consent-jwt", "jwt", issue_credential(consent_credential(), PATIENT, "jwt", ISSUED)),
    ]
    request_cases = [{"name": n, "format": f, "credential": c} for n, f, c in cases]
    return request_cases, {LIST_URL: status_vc}


def run_verifiers(
    cases: list[dict[str, Any]], status_lists: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each case's verdict from each outside verifier, by (case name, verifier)."""
    node = require_node()
    request = {
        "now": VERIFIER_NOW,
        "statusListContext": json.loads(STATUS_CONTEXT.read_text()),
        "statusLists": status_lists,
        "cases": cases,
    }
    proc = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(request).encode(),
        capture_output=True,
        cwd=NODE_DIR,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = json.loads(proc.stdout)
    return {(r["name"], r["verifier"]): r for r in results}


@pytest.fixture(scope="module")
def verdicts() -> dict[tuple[str, str], dict[str, Any]]:
    return run_verifiers(*build_cases())


DB = "@digitalbazaar/vc"


@pytest.mark.integration
@pytest.mark.parametrize("name", ["grant-ldp", "consent-ldp", "status-list-ldp"])
def test_digital_bazaar_accepts_ldp(verdicts: dict[tuple[str, str], Any], name: str) -> None:
    verdict = verdicts[(name, DB)]
    assert verdict["verified"], verdict["error"]
    if name != "status-list-ldp":
        assert verdict["revoked"] is False  # its own StatusList2021 check read our list


@pytest.mark.integration
def test_digital_bazaar_sees_the_revocation(verdicts: dict[tuple[str, str], Any]) -> None:
    verdict = verdicts[("grant-ldp-revoked", DB)]
    assert verdict["revoked"] is True
    assert not verdict["verified"]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["grant-ldp-tampered", "grant-ldp-issuer-swapped"])
def test_digital_bazaar_rejects(verdicts: dict[tuple[str, str], Any], name: str) -> None:
    verdict = verdicts[(name, DB)]
    assert not verdict["verified"]
    assert "Invalid signature" in verdict["error"]
    assert verdict["revoked"] is None  # failed on the proof, before any status check


@pytest.mark.integration
def test_digital_bazaar_is_in_safe_mode(verdicts: dict[tuple[str, str], Any]) -> None:
    # An undefined term is an error there, so the accepted credentials define every term.
    verdict = verdicts[("grant-ldp-undefined-term", DB)]
    assert not verdict["verified"]
    assert "Safe mode" in verdict["error"] or "safe mode" in verdict["error"]


@pytest.mark.integration
@pytest.mark.parametrize("verifier", ["did-jwt-vc", "jose"])
@pytest.mark.parametrize("name", ["grant-jwt", "consent-jwt"])
def test_jwt_verifiers_accept(
    verdicts: dict[tuple[str, str], Any], name: str, verifier: str
) -> None:
    verdict = verdicts[(name, verifier)]
    assert verdict["verified"], verdict["error"]


@pytest.mark.integration
@pytest.mark.parametrize("verifier", ["did-jwt-vc", "jose"])
@pytest.mark.parametrize("name", ["grant-jwt-tampered", "grant-jwt-forged"])
def test_jwt_verifiers_reject(
    verdicts: dict[tuple[str, str], Any], name: str, verifier: str
) -> None:
    verdict = verdicts[(name, verifier)]
    assert not verdict["verified"]
    assert "signature" in verdict["error"]
