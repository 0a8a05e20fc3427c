"""did:web: DID to URL (the method spec's examples), reading key-agreement keys from documents."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from healthwallet import didweb, keys
from healthwallet.errors import BadInputError, UsageError

ME = keys.Identity(hashlib.sha256(b"a doctor").digest())
DID = "did:web:clinic.example:staff:lee"
MULTIBASE_X = "z" + keys.b58encode(keys.X25519_PUB_PREFIX + ME.x25519_public)


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
        ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
        ("did:web:example.com%3A3000:user:alice", "https://example.com:3000/user/alice/did.json"),
        ("did:web:localhost%3a8443", "https://localhost:8443/.well-known/did.json"),
    ],
)
def test_document_url_follows_the_method_spec(did: str, url: str) -> None:
    assert didweb.document_url(did) == url
    assert didweb.is_did_web(did)


@pytest.mark.parametrize(
    "did",
    [
        "did:key:z6Mkabc",
        "did:web:",
        "did:web:Example.COM",  # the method writes domains in lower case
        "did:web:exa mple.com",
        "did:web:example.com%2Fevil",
        "did:web:example.com%3A0",
        "did:web:example.com%3A",
        "did:web:example.com%3A99999",
        "did:web:127.0.0.1",  # the method names domains, never IP addresses
        "did:web:example.com:..:secret",
        "did:web:example.com:a/b",
        "did:web:example.com::x",
        "did:web:-bad-.com",
        "did:web:" + "a" * 600,
    ],
)
def test_malformed_did_web_is_a_usage_error(did: str) -> None:
    assert not didweb.is_did_web(did)
    with pytest.raises(UsageError):
        didweb.document_url(did)


def test_our_own_document_yields_our_x25519_key() -> None:
    document = didweb.document_for(DID, ME.did)
    found = didweb.key_agreement_of(document, DID)
    assert found == didweb.KeyAgreement(DID, DID + "#key-2", ME.x25519_public)
    signing = document["verificationMethod"][0]
    assert signing["publicKeyMultibase"] == ME.did.removeprefix("did:key:")
    assert document["authentication"] == [DID + "#key-1"]


def method(kind: str, **material: Any) -> dict[str, Any]:
    return {"id": DID + "#ka", "type": kind, "controller": DID, **material}


@pytest.mark.parametrize(
    "entry",
    [
        method("X25519KeyAgreementKey2019", publicKeyBase58=keys.b58encode(ME.x25519_public)),
        method("X25519KeyAgreementKey2020", publicKeyMultibase=MULTIBASE_X),
        method("Multikey", publicKeyMultibase=MULTIBASE_X),
        method(
            "JsonWebKey2020",
            publicKeyJwk={"kty": "OKP", "crv": "X25519", "x": keys.b64url(ME.x25519_public)},
        ),
    ],
)
def test_every_common_encoding_of_an_x25519_key_is_read(entry: dict[str, Any]) -> None:
    embedded = {"id": DID, "keyAgreement": [entry]}
    referenced = {"id": DID, "verificationMethod": [entry], "keyAgreement": [DID + "#ka"]}
    relative = {"id": DID, "verificationMethod": [entry], "keyAgreement": ["#ka"]}
    for document in (embedded, referenced, relative):
        assert didweb.key_agreement_of(document, DID).x25519_public == ME.x25519_public


def test_unusable_keys_are_skipped_and_the_first_usable_one_wins() -> None:
    low_order = bytes(32)
    wrong_codec = "z" + keys.b58encode(keys.ED25519_PUB_PREFIX + ME.public_key)
    elsewhere = dict(method("Multikey", publicKeyMultibase=MULTIBASE_X), id="did:web:evil#k")
    with_private = method(
        "JsonWebKey2020",
        publicKeyJwk={"kty": "OKP", "crv": "X25519", "x": keys.b64url(ME.x25519_public), "d": "x"},
    )
    document = {
        "id": DID,
        "keyAgreement": [
            method("X25519KeyAgreementKey2019", publicKeyBase58=keys.b58encode(low_order)),
            method("X25519KeyAgreementKey2020", publicKeyMultibase=wrong_codec),
            method("X25519KeyAgreementKey2020", publicKeyMultibase="z0OIl"),
            method("X25519KeyAgreementKey2019", publicKeyBase58="2" * 90_000),
            method("Ed25519VerificationKey2020", publicKeyMultibase=MULTIBASE_X),
            elsewhere,
            with_private,
            "#missing",
            42,
            dict(method("Multikey", publicKeyMultibase=MULTIBASE_X), id="#good"),
        ],
    }
    found = didweb.key_agreement_of(document, DID)
    assert found.key_id == DID + "#good" and found.x25519_public == ME.x25519_public
    document["keyAgreement"] = document["keyAgreement"][:-1]
    with pytest.raises(BadInputError, match="no usable X25519 keyAgreement key"):
        didweb.key_agreement_of(document, DID)


@pytest.mark.parametrize("document", [[], "x", {"id": "did:web:other.example"}, {}])
def test_a_document_about_someone_else_is_refused(document: object) -> None:
    with pytest.raises(BadInputError, match="is not about"):
        didweb.key_agreement_of(document, DID)
