"""Bounded work for any input: identifiers are capped before decoding, KDF costs before deriving."""

from __future__ import annotations

import json

import pytest

from healthwallet import keys, keystore, limits
from healthwallet.errors import KeystoreError, UsageError

SEED = bytes(range(32))
REAL_DID = keys.Identity(SEED).did
MEGABYTE_DID_KEY = "did:key:z6Mk" + "z" * 1_000_000


def test_a_real_did_key_is_exactly_the_capped_length() -> None:
    assert len(REAL_DID) == limits.ED25519_DID_KEY_CHARS
    assert keys.ed25519_from_did(REAL_DID) == keys.Identity(SEED).public_key
    assert keys.ed25519_from_did(keys.verification_method(REAL_DID)) == keys.Identity(SEED).public_key


def test_oversized_did_key_is_refused_before_base58_decoding() -> None:
    with pytest.raises(UsageError, match="wrong length"):
        keys.ed25519_from_did(MEGABYTE_DID_KEY)
    assert not keys.is_did_key(MEGABYTE_DID_KEY)
    assert not keys.is_did_key(REAL_DID + "z")
    assert not keys.is_did_key(REAL_DID + "#" + "z" * 1_000_000)


def test_oversized_base58_text_is_refused_before_decoding() -> None:
    assert keys.b58decode("z" * limits.MAX_BASE58_CHARS)
    with pytest.raises(ValueError, match="longer than"):
        keys.b58decode("z" * 1_000_000)


def _keystore_with(**cost: object) -> bytes:
    body = json.loads(keystore.seal_seed_file(SEED, "pw"))
    body.update(cost)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "cost",
    [
        {"opslimit": 12, "memlimit": 1024**3},  # the probe from issue 9
        {"opslimit": limits.MAX_ARGON2ID_OPSLIMIT + 1},
        {"memlimit": limits.MAX_ARGON2ID_MEMLIMIT + 1},
        {"opslimit": 2**62, "memlimit": 2**62},
    ],
)
def test_keystore_file_asking_for_more_argon2id_cost_than_we_write_is_refused_before_deriving(
    cost: dict[str, object],
) -> None:
    with pytest.raises(KeystoreError, match="higher Argon2id cost") as info:
        keystore.open_seed_file(_keystore_with(**cost), "pw")
    assert info.value.exit_code == 4


@pytest.mark.parametrize("value", ["3", 3.0, True, None, [3]])
def test_keystore_file_with_argon2id_cost_of_another_type_is_refused(value: object) -> None:
    with pytest.raises(KeystoreError):
        keystore.open_seed_file(_keystore_with(opslimit=value), "pw")


def test_argon2id_cost_headroom_and_floor() -> None:
    written = (limits.ARGON2ID_OPSLIMIT, limits.ARGON2ID_MEMLIMIT)
    assert limits.argon2id_cost(*written, allow_weaker=False) == written
    most = (limits.MAX_ARGON2ID_OPSLIMIT, limits.MAX_ARGON2ID_MEMLIMIT)
    assert limits.argon2id_cost(*most, allow_weaker=False) == most
    assert limits.MAX_ARGON2ID_OPSLIMIT <= 4 and limits.MAX_ARGON2ID_MEMLIMIT <= 320 * 1024**2
    with pytest.raises(limits.CostRefused, match="weaker"):
        limits.argon2id_cost(1, limits.ARGON2ID_MEMLIMIT, allow_weaker=False)
    with pytest.raises(limits.CostRefused, match="weaker"):
        limits.argon2id_cost(0, 8192, allow_weaker=True)
