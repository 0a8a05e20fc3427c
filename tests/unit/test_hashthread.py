"""Digests computed on the worker thread are exactly those of a serial run."""

from __future__ import annotations

import hashlib
import os

import pytest

from healthwallet.hashthread import HashWorker, hashing


def test_digests_match_a_serial_run_across_feeds_and_batches() -> None:
    pieces = [os.urandom(n) for n in (1, 65536, 700_000, 3, 2_000_000, 65536, 0, 17)]
    envelope, commitments = hashlib.sha256(b"header"), []
    with hashing() as worker:
        for piece in pieces:
            worker.feed(envelope).update(piece)  # a new feed per record, as `open` does
            commitments.append(hashlib.sha256(b"salt"))
            feed = worker.feed(commitments[-1])
            feed.update(bytearray(piece))  # a mutable buffer is copied before it is queued
            feed.update(piece)
    assert envelope.hexdigest() == hashlib.sha256(b"header" + b"".join(pieces)).hexdigest()
    for piece, commitment in zip(pieces, commitments, strict=True):
        assert commitment.hexdigest() == hashlib.sha256(b"salt" + piece + piece).hexdigest()


def test_an_update_error_reaches_the_caller() -> None:
    class Broken:
        def update(self, data: bytes) -> None:
            raise ValueError("broken hasher")

    worker = HashWorker()
    worker.feed(Broken()).update(b"x")
    with pytest.raises(ValueError, match="broken hasher"):
        worker.finish()


def test_a_failed_block_abandons_the_worker_without_waiting() -> None:
    with pytest.raises(RuntimeError), hashing() as worker:
        worker.feed(hashlib.sha256()).update(os.urandom(4 * 1024 * 1024))
        raise RuntimeError("the write failed")
