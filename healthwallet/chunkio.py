"""File-like adapters over secretstream chunks: an encrypting writer and a plaintext reader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from nacl import bindings

from . import stream
from .hashthread import Feed

ProgressCallback = Callable[[int], None]
"""Told the number of bytes just processed (plaintext); see docs/cli.md, "Progress"."""


class StreamEncryptor:
    """A write-only file that encrypts into ``dst`` with the chunk framing of stream.py."""

    def __init__(self, key: bytes, dst: BinaryIO, associated_data: bytes) -> None:
        self._state = bindings.crypto_secretstream_xchacha20poly1305_state()
        dst.write(bindings.crypto_secretstream_xchacha20poly1305_init_push(self._state, key))
        self._dst = dst
        self._ad = associated_data
        self._buffer = bytearray()

    def _push(self, chunk: bytes, final: bool) -> None:
        tag = (
            bindings.crypto_secretstream_xchacha20poly1305_TAG_FINAL
            if final
            else bindings.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
        )
        self._dst.write(
            bindings.crypto_secretstream_xchacha20poly1305_push(self._state, chunk, self._ad, tag)
        )

    def write(self, data: bytes) -> int:
        """Buffer ``data``, encrypting every full chunk but the last one seen."""
        self._buffer += data
        # Keep at least one byte back: only the last chunk may carry TAG_FINAL.
        whole = (len(self._buffer) - 1) // stream.CHUNK_SIZE * stream.CHUNK_SIZE
        if whole > 0:
            with memoryview(self._buffer) as view:
                for start in range(0, whole, stream.CHUNK_SIZE):
                    self._push(bytes(view[start : start + stream.CHUNK_SIZE]), final=False)
            del self._buffer[:whole]
        return len(data)

    def finish(self) -> None:
        """Encrypt what is buffered as the final chunk."""
        self._push(bytes(self._buffer), final=True)
        self._buffer.clear()


class ChunkReader:
    """A read-only file over the authenticated plaintext chunks of a stream.

    Reads may return fewer bytes than asked (never none before the end), so a caller reading
    whole chunks gets them without a copy.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self.done = False

    def _next_chunk(self) -> bytes:
        while not self.done:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self.done = True
                break
            if chunk:
                return chunk
        return b""

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left for -1); b"" only at the end."""
        if size < 0:
            parts = [bytes(self._buffer)]
            self._buffer.clear()
            while chunk := self._next_chunk():
                parts.append(chunk)
            return b"".join(parts)
        if not self._buffer:
            chunk = self._next_chunk()
            if len(chunk) <= size:
                return chunk
            self._buffer += chunk
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


def consumer(
    feed: Feed, on_progress: ProgressCallback | None, *more: Feed
) -> Callable[[bytes], None]:
    """Hash each chunk on the worker behind ``feed`` (and ``more``, each on its own worker),
    and report its size when asked to."""
    if on_progress is None and not more:
        return feed.update

    def consume(chunk: bytes) -> None:
        feed.update(chunk)
        for other in more:
            other.update(chunk)
        if on_progress is not None:
            on_progress(len(chunk))

    return consume


def counted(chunks: Iterator[bytes], on_progress: ProgressCallback | None) -> Iterator[bytes]:
    """``chunks``, reporting each one's size to ``on_progress`` (when given) as it passes."""
    if on_progress is None:
        yield from chunks
        return
    for chunk in chunks:
        on_progress(len(chunk))
        yield chunk
