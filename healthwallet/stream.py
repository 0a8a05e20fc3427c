"""Chunked authenticated encryption: libsodium secretstream (XChaCha20-Poly1305).

Layout of an encrypted stream: a 24-byte secretstream header, then chunks. Every chunk
but the last holds exactly ``CHUNK_SIZE`` plaintext bytes (``CHUNK_SIZE + 17`` on the
wire); the last holds 0..CHUNK_SIZE bytes and carries TAG_FINAL. Associated data, when
given, is bound to every chunk. A truncated stream (no TAG_FINAL), a reordered or
changed chunk, or bytes after the final chunk all fail. Memory stays at one chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

from nacl import bindings

from .errors import VerificationError

RandomBytes = Callable[[int], bytes]
"""Source of randomness, injectable so tests can pin it (default: os.urandom)."""

CHUNK_SIZE = 64 * 1024
HEADER_BYTES: int = bindings.crypto_secretstream_xchacha20poly1305_HEADERBYTES
ABYTES: int = bindings.crypto_secretstream_xchacha20poly1305_ABYTES
KEY_BYTES: int = bindings.crypto_secretstream_xchacha20poly1305_KEYBYTES
_TAG_MESSAGE: int = bindings.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: int = bindings.crypto_secretstream_xchacha20poly1305_TAG_FINAL


def read_full(src: BinaryIO, size: int, block: int = 1 << 20) -> bytes:
    """Read up to ``size`` bytes, looping over short reads (pipes, sockets).

    Reads at most ``block`` bytes at a time, so a length claimed by a file is never
    allocated in one piece before the bytes are actually there.
    """
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = src.read(min(remaining, block))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def ciphertext_size(plaintext_size: int) -> int:
    """Bytes on the wire for ``plaintext_size`` bytes of plaintext."""
    chunks = max(1, -(-plaintext_size // CHUNK_SIZE))
    return HEADER_BYTES + plaintext_size + chunks * ABYTES


def encrypt_stream(
    key: bytes,
    src: BinaryIO,
    dst: BinaryIO,
    associated_data: bytes = b"",
    on_plaintext: Callable[[bytes], None] | None = None,
) -> int:
    """Encrypt all of ``src`` into ``dst``; returns the plaintext length.

    ``on_plaintext`` sees each plaintext chunk (to hash it, or to report progress).
    """
    state = bindings.crypto_secretstream_xchacha20poly1305_state()
    header = bindings.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    dst.write(header)
    total = 0
    pending = read_full(src, CHUNK_SIZE)
    while True:
        following = read_full(src, CHUNK_SIZE) if len(pending) == CHUNK_SIZE else b""
        final = not following
        if on_plaintext is not None:
            on_plaintext(pending)
        total += len(pending)
        tag = _TAG_FINAL if final else _TAG_MESSAGE
        dst.write(
            bindings.crypto_secretstream_xchacha20poly1305_push(
                state, pending, associated_data or None, tag
            )
        )
        if final:
            return total
        pending = following


def decrypt_chunks(key: bytes, src: BinaryIO, associated_data: bytes = b"") -> Iterator[bytes]:
    """Yield plaintext chunks of a stream; raise VerificationError if it is not intact.

    Chunks are authenticated one at a time, so a caller that writes them out must
    treat its output as provisional until the iterator finishes without error.
    """
    header = read_full(src, HEADER_BYTES)
    if len(header) != HEADER_BYTES:
        raise VerificationError("encrypted stream is truncated (no header)")
    state = bindings.crypto_secretstream_xchacha20poly1305_state()
    try:
        bindings.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    except Exception:
        raise VerificationError("encrypted stream header is invalid") from None
    while True:
        chunk = read_full(src, CHUNK_SIZE + ABYTES)
        if len(chunk) < ABYTES:
            raise VerificationError("encrypted stream is truncated")
        try:
            plaintext, tag = bindings.crypto_secretstream_xchacha20poly1305_pull(
                state, chunk, associated_data or None
            )
        except Exception:
            raise VerificationError("encrypted stream failed authentication") from None
        if tag == _TAG_FINAL:
            if src.read(1):
                raise VerificationError("encrypted stream has data after its end")
            yield plaintext
            return
        if len(chunk) != CHUNK_SIZE + ABYTES:
            raise VerificationError("encrypted stream is truncated")
        yield plaintext


def decrypt_stream(key: bytes, src: BinaryIO, dst: BinaryIO, associated_data: bytes = b"") -> int:
    """Decrypt ``src`` into ``dst``; returns the plaintext length."""
    total = 0
    for plaintext in decrypt_chunks(key, src, associated_data):
        dst.write(plaintext)
        total += len(plaintext)
    return total


def seal_bytes(
    key: bytes,
    plaintext: bytes,
    associated_data: bytes = b"",
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """Encrypt a small value with XChaCha20-Poly1305 (random nonce prefixed)."""
    nonce = random_bytes(bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    sealed = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, associated_data or None, nonce, key
    )
    return bytes(nonce + sealed)


def open_bytes(key: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    """Decrypt a value from :func:`seal_bytes`; VerificationError if it was changed."""
    npub = bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
    if len(sealed) < npub + ABYTES - 1:
        raise VerificationError("sealed value is truncated")
    try:
        return bytes(
            bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[npub:], associated_data or None, sealed[:npub], key
            )
        )
    except Exception:
        raise VerificationError("sealed value failed authentication") from None
