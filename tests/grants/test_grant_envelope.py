"""The grant envelope: sealing the content key, record subkeys, metadata, header parsing."""

from __future__ import annotations

import hashlib
import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings

from healthwallet import envelope as env
from healthwallet import stream
from healthwallet.errors import BadInputError, VerificationError
from healthwallet.keys import Identity

ALICE = Identity(bytes(range(32)))
BOB = Identity(bytes(range(1, 33)))


def counter_random() -> env.RandomBytes:
    """A pinned, non-repeating random source for test vectors."""
    counter = itertools.count()

    def random_bytes(size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(b"test-random" + next(counter).to_bytes(8, "big")).digest()
        return out[:size]

    return random_bytes


def test_stanza_is_a_libsodium_sealed_box() -> None:
    key = bytes(32)
    stanza = env.seal_file_key(key, BOB.x25519_public, counter_random())
    body = env.b64d(stanza["body"], "body")
    assert len(body) == 80
    opened = bindings.crypto_box_seal_open(body, BOB.x25519_public, BOB.x25519_private)
    assert opened == key
    # ...and what libsodium's own crypto_box_seal makes opens with ours.
    sealed = bindings.crypto_box_seal(b"k" * 32, BOB.x25519_public)
    stanzas = [{"type": env.STANZA_TYPE, "body": env.b64e(sealed)}]
    assert env.unseal_file_key(stanzas, BOB.x25519_public, BOB.x25519_private) == b"k" * 32


def test_stanza_for_someone_else_does_not_open() -> None:
    stanza = env.seal_file_key(bytes(32), BOB.x25519_public)
    with pytest.raises(VerificationError, match="not sealed to this wallet"):
        env.unseal_file_key([stanza], ALICE.x25519_public, ALICE.x25519_private)


def test_pinned_randomness_gives_a_stable_vector() -> None:
    first = env.seal_file_key(bytes(32), BOB.x25519_public, counter_random())
    second = env.seal_file_key(bytes(32), BOB.x25519_public, counter_random())
    assert first == second


def test_record_keys_depend_on_position_and_id() -> None:
    key = bytes(32)
    base = env.record_keys(key, 0, "a")
    assert base.data != base.meta
    assert env.record_keys(key, 1, "a").data != base.data
    assert env.record_keys(key, 0, "b").data != base.data
    assert env.record_keys(bytes([1]) + bytes(31), 0, "a").data != base.data


def test_a_record_cannot_be_moved_to_another_slot() -> None:
    key = bytes(32)
    ciphertext = io.BytesIO()
    env.encrypt_record(env.record_keys(key, 0, "a"), io.BytesIO(b"hello"), ciphertext)
    assert (
        b"".join(
            env.decrypt_record(env.record_keys(key, 0, "a"), io.BytesIO(ciphertext.getvalue()))
        )
        == b"hello"
    )
    for index, record_id in ((1, "a"), (0, "b")):
        with pytest.raises(VerificationError):
            list(
                env.decrypt_record(
                    env.record_keys(key, index, record_id), io.BytesIO(ciphertext.getvalue())
                )
            )


def test_record_meta_round_trip_and_binding() -> None:
    keys0 = env.record_keys(bytes(32), 0, "r0")
    meta = env.RecordMeta("scan.pdf", "application/pdf", b"s" * 32, 12)
    sealed = meta.seal(keys0, counter_random())
    assert env.RecordMeta.open(sealed, keys0, "r0") == meta
    assert "scan" not in sealed
    with pytest.raises(VerificationError, match="metadata failed authentication"):
        env.RecordMeta.open(sealed, env.record_keys(bytes(32), 1, "r0"), "r0")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1, "b":2}',  # spacing
        b'{"b":1,"a":2}',  # key order
        b'{"a":1,"a":2}',  # duplicate key
        b'{"a":"\\u0041"}',  # needless escape
        b'{"a":1.10}',  # a float not in its shortest form
        b'{"a":1e1}',
        b'{"a":NaN}',
        b'{"a":1}\n',
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_non_canonical_json_is_refused(raw: bytes) -> None:
    with pytest.raises(BadInputError):
        env.parse_canonical_json(raw, "header")


def test_canonical_json_is_accepted() -> None:
    raw = env.canonical_json({"b": [1, "é", None, True], "a": {"z": "\n"}})
    assert env.parse_canonical_json(raw, "header") == {"a": {"z": "\n"}, "b": [1, "é", None, True]}


@pytest.mark.parametrize("text", ["AA=", "AB", "A+", "A/", "A", "AAA=", 5])
def test_strict_base64url(text: object) -> None:
    with pytest.raises(BadInputError):
        env.b64d(text, "field")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10 * stream.CHUNK_SIZE))
def test_ciphertext_lengths(size: int) -> None:
    length = stream.ciphertext_size(size)
    assert env.is_ciphertext_length(length)
    assert env.plaintext_length(length) == size
    # No other plaintext size lands on the lengths just around a chunk's tag.
    for other in range(length + 1, length + stream.ABYTES):
        if env.is_ciphertext_length(other):
            assert stream.ciphertext_size(env.plaintext_length(other)) == other


def _header(**overrides: object) -> dict[str, object]:
    keys0 = env.record_keys(bytes(32), 0, "r0")
    value: dict[str, object] = {
        "chunk": stream.CHUNK_SIZE,
        "stanzas": [env.seal_file_key(bytes(32), BOB.x25519_public)],
        "records": [
            {
                "id": "r0",
                "length": stream.ciphertext_size(3),
                "meta": env.RecordMeta("a", "text/plain", b"s" * 32, 3).seal(keys0),
            }
        ],
    }
    value.update(overrides)
    return value


def test_envelope_header_round_trip() -> None:
    value = _header()
    header = env.EnvelopeHeader.from_json(value)
    assert header.to_json() == value
    assert header.payload_length == stream.ciphertext_size(3)


@pytest.mark.parametrize(
    "overrides",
    [
        {"chunk": 4096},
        {"extra": 1},
        {"stanzas": []},
        {"stanzas": [{"type": env.STANZA_TYPE, "body": "AAAA"}]},
        {"records": []},
        {"records": [{"id": "r 0", "length": 41, "meta": ""}]},
        {"records": [{"id": "r0", "length": 40, "meta": ""}]},
        {"records": [{"id": "r0", "length": 65578, "meta": ""}]},
        {"records": [{"id": "r0", "length": True, "meta": ""}]},
        {"anchors": []},
        {"anchors": [{"record": "nope", "proof": {}}]},
    ],
)
def test_malformed_envelope_headers(overrides: dict[str, object]) -> None:
    with pytest.raises(BadInputError):
        env.EnvelopeHeader.from_json(_header(**overrides))
