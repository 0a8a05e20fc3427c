"""Chunked secretstream: round trips, and every kind of damage is refused."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthwallet import stream
from healthwallet.errors import VerificationError

KEY = bytes(range(32))
SIZES = [0, 1, stream.CHUNK_SIZE - 1, stream.CHUNK_SIZE, stream.CHUNK_SIZE + 1,
         3 * stream.CHUNK_SIZE, 3 * stream.CHUNK_SIZE + 5]


def encrypt(data: bytes, ad: bytes = b"ad") -> bytes:
    out = io.BytesIO()
    assert stream.encrypt_stream(KEY, io.BytesIO(data), out, ad) == len(data)
    return out.getvalue()


def decrypt(blob: bytes, ad: bytes = b"ad") -> bytes:
    out = io.BytesIO()
    stream.decrypt_stream(KEY, io.BytesIO(blob), out, ad)
    return out.getvalue()


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_size(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    blob = encrypt(data)
    assert len(blob) == stream.ciphertext_size(size)
    assert decrypt(blob) == data


@pytest.mark.parametrize("size", SIZES)
def test_truncation_at_every_chunk_boundary_fails(size: int) -> None:
    blob = encrypt(bytes(size))
    cuts = {0, 10, stream.HEADER_BYTES, len(blob) - 1}
    cuts |= {stream.HEADER_BYTES + k * (stream.CHUNK_SIZE + stream.ABYTES) for k in range(4)}
    for cut in sorted(c for c in cuts if c < len(blob)):
        with pytest.raises(VerificationError):
            decrypt(blob[:cut])


def test_trailing_data_wrong_ad_and_wrong_key_fail() -> None:
    blob = encrypt(b"x" * 100)
    with pytest.raises(VerificationError):
        decrypt(blob + b"\0")
    with pytest.raises(VerificationError):
        decrypt(blob, ad=b"other")
    with pytest.raises(VerificationError):
        stream.decrypt_stream(bytes(32), io.BytesIO(blob), io.BytesIO(), b"ad")


def test_chunks_cannot_be_reordered() -> None:
    data = b"a" * stream.CHUNK_SIZE + b"b" * stream.CHUNK_SIZE + b"c"
    blob = encrypt(data)
    h, n = stream.HEADER_BYTES, stream.CHUNK_SIZE + stream.ABYTES
    swapped = blob[:h] + blob[h + n : h + 2 * n] + blob[h : h + n] + blob[h + 2 * n :]
    with pytest.raises(VerificationError):
        decrypt(swapped)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.data())
def test_any_flipped_byte_is_detected(data: bytes, draw: st.DataObject) -> None:
    blob = bytearray(encrypt(data))
    index = draw.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= draw.draw(st.integers(1, 255))
    with pytest.raises(VerificationError):
        decrypt(bytes(blob))


def test_sealed_values() -> None:
    sealed = stream.seal_bytes(KEY, b"secret", b"ad")
    assert stream.open_bytes(KEY, sealed, b"ad") == b"secret"
    for bad in (sealed[:-1], sealed + b"x", bytes([sealed[0] ^ 1]) + sealed[1:]):
        with pytest.raises(VerificationError):
            stream.open_bytes(KEY, bad, b"ad")
    with pytest.raises(VerificationError):
        stream.open_bytes(KEY, sealed, b"other")
