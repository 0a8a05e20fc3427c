"""`import` against servers that misbehave: each failure one line, with its documented exit code."""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Cli, Result
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from link_peers import trusting
from shl_server import Reply, https_server

from healthwallet import keys
from healthwallet.links import jwe
from healthwallet.links.payload import LinkPayload

KEY = bytes(range(32))
LINK_ID = "B" * 43
BUNDLE = {"resourceType": "Bundle", "type": "collection",
          "entry": [{"resource": {"resourceType": "Observation", "status": "final",
                                  "code": {"text": "ferritin"}}}]}


def _reply(status: int, value: object, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(value).encode()


def _manifest(*files: tuple[str, str]) -> Reply:
    return _reply(200, {"files": [{"contentType": t, "embedded": f} for t, f in files]})


def _fhir_file() -> str:
    return jwe.encrypt(KEY, json.dumps(BUNDLE).encode(), "application/fhir+json", os.urandom)


def _run(tmp_path: Path, answer: Callable[[str, str], Reply], *args: str,
         exp: int | None = None, flag: str = "") -> tuple[Cli, Result, list[str]]:
    seen: list[str] = []

    def routes(method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        seen.append(f"{method} {target}")
        return answer(method, target)

    with https_server(routes, tmp_path) as (base, ca):
        doctor = trusting(tmp_path, "doctor", ca)
        link = LinkPayload(f"{base}m/{LINK_ID}", KEY, exp, flag).uri()
        result = doctor("import", link, "--recipient", "Dr. Okafor", "--json", *args)
    return doctor, result, seen


def test_rate_limited_import_names_retry_after(tmp_path: Path) -> None:
    _, result, _ = _run(tmp_path, lambda m, t: _reply(429, {}, **{"Retry-After": "7"}))
    assert result.code == 5
    assert "HTTP 429" in result.err and "try again in 7 s" in result.err


def test_expired_link_is_refused_before_any_request(tmp_path: Path) -> None:
    _, result, seen = _run(tmp_path, lambda m, t: _manifest(), exp=int(time.time()) - 60)
    assert result.code == 3 and "the link expired" in result.err
    assert seen == []


def test_unknown_link_is_a_404(tmp_path: Path) -> None:
    _, result, _ = _run(tmp_path, lambda m, t: _reply(404, {}))
    assert result.code == 3 and "HTTP 404" in result.err


def test_redirect_is_not_followed(tmp_path: Path) -> None:
    _, result, _ = _run(tmp_path, lambda m, t: _reply(302, {}, Location="https://evil.example/"))
    assert result.code == 5 and "redirect (not followed)" in result.err


def _bomb_file(plaintext: bytes) -> str:
    """A link file of ``plaintext`` DEFLATEd (small on the wire), encrypted under KEY."""
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = squeezer.compress(plaintext) + squeezer.flush()
    header = keys.b64url(json.dumps({"alg": "dir", "enc": "A256GCM", "zip": "DEF",
                                     "cty": "application/fhir+json"}).encode())
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    iv = os.urandom(12)
    sealed = AESGCM(KEY).encrypt(iv, bomb, header.encode())
    return ".".join([header, "", keys.b64url(iv), keys.b64url(sealed[:-16]),
                     keys.b64url(sealed[-16:])])


def test_decompression_bomb_in_a_link_file_is_refused(tmp_path: Path) -> None:
    compact = _bomb_file(b"\0" * (80 << 20))
    doctor, result, _ = _run(tmp_path, lambda m, t: _manifest(("application/fhir+json", compact)))
    assert result.code == 2 and "inflates to more than 64 MiB" in result.err
    assert doctor.ok("record", "list", "--json").json()["records"] == []


def test_decompression_bombs_spread_over_many_link_files_are_refused(tmp_path: Path) -> None:
    # Each file stays under the 64 MiB a file may inflate to; together they pass 256 MiB.
    files = [("application/fhir+json", _bomb_file(b" " * (60 << 20)))] * 5
    doctor, result, _ = _run(tmp_path, lambda m, t: _manifest(*files))
    assert result.code == 2 and "together hold more than 256 MiB" in result.err
    assert doctor.ok("record", "list", "--json").json()["records"] == []


def test_oversized_manifest_is_refused_unread(tmp_path: Path) -> None:
    huge = (200, {"Content-Type": "application/json", "Content-Length": str(1 << 30)}, b"{}")
    _, result, _ = _run(tmp_path, lambda m, t: huge)
    assert result.code == 2 and "larger than 16 MiB" in result.err


def test_file_with_another_content_type_than_its_manifest_entry_is_refused(
    tmp_path: Path,
) -> None:
    _, result, _ = _run(tmp_path, lambda m, t: _manifest(("application/smart-health-card",
                                                          _fhir_file())))
    assert result.code == 2 and "content type differs" in result.err


def test_api_access_file_is_reported_not_stored(tmp_path: Path) -> None:
    access = jwe.encrypt(KEY, b'{"aud":"https://fhir.example/","access_token":"t"}',
                         "application/smart-api-access", os.urandom)
    _, result, _ = _run(tmp_path, lambda m, t: _manifest(
        ("application/fhir+json", _fhir_file()), ("application/smart-api-access", access)))
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert len(out["records"]) == 1
    assert out["skipped"][0]["content_type"] == "application/smart-api-access"
    assert '"t"' not in result.out


def _card(signer: ec.EllipticCurvePrivateKey, iss: str, kid: str) -> str:
    header = keys.b64url(json.dumps({"alg": "ES256", "zip": "DEF", "kid": kid}).encode())
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    claims = {"iss": iss, "nbf": int(time.time()), "vc": {
        "type": ["https://smarthealth.cards#health-card"],
        "credentialSubject": {"fhirVersion": "4.0.1", "fhirBundle": BUNDLE}}}
    payload = keys.b64url(squeezer.compress(json.dumps(claims).encode()) + squeezer.flush())
    der = signer.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{header}.{payload}." + keys.b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _jwk(signer: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    numbers = signer.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": keys.b64url(numbers.x.to_bytes(32, "big")),
            "y": keys.b64url(numbers.y.to_bytes(32, "big"))}


@pytest.mark.parametrize("tamper", [False, True], ids=["genuine", "tampered"])
def test_health_card_is_verified_against_the_issuers_published_keys(
    tmp_path: Path, tamper: bool
) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    state: dict[str, str] = {}

    def answer(method: str, target: str) -> Reply:
        if target == "/.well-known/jwks.json":
            return _reply(200, {"keys": [_jwk(signer, "k1")]})
        card = _card(signer, state["iss"], "k1")
        if tamper:
            card = card[:-4] + ("AAAA" if not card.endswith("AAAA") else "BBBB")
        content = json.dumps({"verifiableCredential": [card]}).encode()
        shc = jwe.encrypt(KEY, content, "application/smart-health-card", os.urandom)
        return _manifest(("application/smart-health-card", shc))

    seen: list[str] = []

    def routes(method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        seen.append(target)
        return answer(method, target)

    with https_server(routes, tmp_path) as (base, ca):
        state["iss"] = base.rstrip("/")
        doctor = trusting(tmp_path, "doctor", ca)
        link = LinkPayload(f"{base}m/{LINK_ID}", KEY).uri()
        result = doctor("import", link, "--recipient", "Dr. Okafor", "--json")
        directory = tmp_path / "directory.json"
        directory.write_text(json.dumps({"issuerInfo": [
            {"issuer": {"iss": state["iss"], "name": "Test Clinic"}, "keys": [_jwk(signer, "k1")]}
        ]}))
        listed = doctor("import", link, "--recipient", "Dr. Okafor", "--json",
                        "--trust-directory", directory)
    if tamper:
        assert result.code == 1 and "signature does not verify" in result.err
        assert listed.code == 1
        assert doctor.ok("record", "list", "--json").json()["records"] == []
        return
    assert result.code == 0, result.err
    row = json.loads(result.out)["records"][0]
    assert row["kind"] == "smart-health-card" and row["issuer_listed"] is False
    assert "no trust directory vouches" in json.loads(result.out)["notes"][0]
    assert listed.code == 0, listed.err
    assert json.loads(listed.out)["records"][0]["issuer_listed"] is True
    labels = {r["label"] for r in doctor.ok("record", "list", "--json").json()["records"]}
    assert labels == {"SMART Health Card (localhost)", "SMART Health Card (Test Clinic)"}
