"""The passphrase-sealed file keystore and its Argon2id cost."""

from __future__ import annotations

import json

import pytest

from healthwallet import keystore
from healthwallet.errors import KeystoreError

SEED = bytes(range(32))


def test_round_trip_and_wrong_passphrase() -> None:
    blob = keystore.seal_seed_file(SEED, "pass phrase")
    assert SEED.hex() not in blob.decode()
    assert keystore.open_seed_file(blob, "pass phrase") == SEED
    with pytest.raises(KeystoreError) as info:
        keystore.open_seed_file(blob, "pass phrasE")
    assert info.value.exit_code == 4


def test_the_test_suite_uses_a_cheap_kdf_only_under_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    assert keystore.kdf_limits() == (keystore._TEST_OPSLIMIT, keystore._TEST_MEMLIMIT)
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert keystore.kdf_limits() == (keystore.OPSLIMIT, keystore.MEMLIMIT)


def test_real_argon2id_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one test that runs the production cost (Argon2id, libsodium 'moderate')."""
    monkeypatch.delenv("HEALTHWALLET_TEST_INSECURE_KDF")
    blob = keystore.seal_seed_file(SEED, "real cost")
    header = json.loads(blob)
    assert header["kdf"] == "argon2id"
    assert header["opslimit"] >= 3 and header["memlimit"] >= 256 * 1024 * 1024
    assert keystore.open_seed_file(blob, "real cost") == SEED


def test_weakened_file_is_refused_outside_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = keystore.seal_seed_file(SEED, "pw")  # cheap, as made under test
    monkeypatch.delenv("HEALTHWALLET_TEST_INSECURE_KDF")
    with pytest.raises(KeystoreError, match="weaker"):
        keystore.open_seed_file(blob, "pw")


@pytest.mark.parametrize("mutate", [
    lambda h: h.update(opslimit=h["opslimit"] + 1),
    lambda h: h.update(salt="00" * 16),
    lambda h: h.update(sealed=h["sealed"][:-2]),
    lambda h: h.update(format="other"),
    lambda h: h.pop("salt"),
])
def test_tampered_file_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    header = json.loads(keystore.seal_seed_file(SEED, "pw"))
    mutate(header)
    with pytest.raises(KeystoreError):
        keystore.open_seed_file(json.dumps(header).encode(), "pw")
