"""did:key and key derivation, against the did:key spec's vectors and didkit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import didkit
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthwallet import keys
from healthwallet.errors import UsageError

# W3C CCG did-method-key test vectors, kept in the repository (see tests/vectors/did-key/README.md).
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "did-key"
ED_VECTORS = json.loads((VECTORS / "did-method-key_ed25519-x25519.json").read_text())


@pytest.mark.parametrize("did", sorted(ED_VECTORS))
def test_seed_gives_the_vector_did_and_x25519_keys(did: str) -> None:
    vector = ED_VECTORS[did]
    identity = keys.Identity(bytes.fromhex(vector["seed"]))
    assert identity.did == did
    fragment = vector["verificationKeyPair"]["id"].split("#", 1)[1]
    assert identity.verification_method == did + "#" + fragment
    agreement = vector["keyAgreementKeyPair"]
    if "publicKeyBase58" in agreement:
        assert keys.b58encode(identity.x25519_public) == agreement["publicKeyBase58"]
        assert keys.b58encode(identity.x25519_private) == agreement["privateKeyBase58"]
    else:
        assert keys.b64url(identity.x25519_public) == agreement["publicKeyJwk"]["x"]
        assert keys.b64url(identity.x25519_private) == agreement["privateKeyJwk"]["d"]
    # The X25519 key derived from the DID alone matches the one derived from the seed,
    # and its own did:key form is the key agreement id of the vector.
    assert keys.x25519_public_from_did(did) == identity.x25519_public
    agreement_fragment = agreement["id"].split("#", 1)[1]
    assert keys.x25519_did_from_public(identity.x25519_public) == "did:key:" + agreement_fragment


def test_x25519_vectors_decode() -> None:
    data = json.loads((VECTORS / "did-method-key_x25519.json").read_text())
    for did, doc in data["didDocument"].items():
        method = doc["verificationMethod"][0]
        if "publicKeyBase58" in method:
            public = keys.b58decode(method["publicKeyBase58"])
        else:
            public = keys.b64url_decode(method["publicKeyJwk"]["x"])
        assert keys.x25519_did_from_public(public) == did


@pytest.mark.parametrize("did", sorted(ED_VECTORS))
def test_didkit_key_to_did_agrees_with_our_encoding(did: str) -> None:
    identity = keys.Identity(bytes.fromhex(ED_VECTORS[did]["seed"]))
    assert didkit.key_to_did("key", identity.jwk()) == did

    async def method_of() -> str:
        return str(await didkit.key_to_verification_method("key", identity.jwk()))

    method = asyncio.run(method_of())
    assert method == identity.verification_method


@settings(deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_did_round_trip(seed: bytes) -> None:
    identity = keys.Identity(seed)
    assert keys.ed25519_from_did(identity.did) == identity.public_key
    assert identity.did.startswith("did:key:z6Mk")


@settings(deadline=None)
@given(st.binary(max_size=80))
def test_base58_round_trip(raw: bytes) -> None:
    assert keys.b58decode(keys.b58encode(raw)) == raw


@pytest.mark.parametrize("bad", [
    "", "did:web:example.com", "did:key:", "did:key:zzzz", "did:key:z0OIl",
    "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F",  # X25519, not Ed25519
    "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW",  # one char short
])
def test_bad_dids_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        keys.ed25519_from_did(bad)
    assert not keys.is_did_key(bad)


def test_vault_key_is_a_distinct_subkey() -> None:
    identity = keys.Identity(bytes(32))
    assert len(identity.vault_key) == 32
    assert identity.vault_key not in (identity.seed, identity.x25519_private)
    assert keys.Identity(bytes(31) + b"\1").vault_key != identity.vault_key


def test_signatures_verify() -> None:
    identity = keys.Identity(bytes(range(32)))
    signature = identity.sign(b"message")
    assert keys.verify_signature(identity.public_key, b"message", signature)
    assert not keys.verify_signature(identity.public_key, b"messagE", signature)
    assert "seed" not in repr(identity) or bytes(range(32)).hex() not in repr(identity)
