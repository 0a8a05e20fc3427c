"""SHA-256 (or any hashlib digest) on a worker thread, so hashing overlaps encryption and I/O.

hashlib releases the GIL on updates larger than 2 KiB, and so do libsodium's calls through
cffi and file reads and writes; with two cores, a large record's commitment (or a backup's
manifest digest) costs no wall time beside the secretstream work. Updates run in the order they
were fed, one hasher at a time, so digests are exactly those of a serial run. See
docs/adr/0019-hashing-on-a-worker-thread.md.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, Protocol


class Hasher(Protocol):
    """What a hashlib object offers that the worker needs."""

    def update(self, data: bytes, /) -> None:
        """Add bytes to the digest."""


BATCH_BYTES = 1024 * 1024  # updates are handed over in batches: one queue operation per MiB


class HashWorker:
    """Runs digest updates on one worker thread, in order."""

    def __init__(self, depth: int = 4) -> None:
        # depth batches of ~1 MiB bound the memory held for hashing (about 5 MiB).
        self._queue: queue.Queue[tuple[Any, list[bytes]] | None] = queue.Queue(depth)
        self._feeds: list[Feed] = []
        self._latest: dict[int, Feed] = {}  # by id() of a hasher, which its feed keeps alive
        self._abandoned = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hw-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None and not self._abandoned:
            if self._error is None:
                try:
                    for data in item[1]:
                        item[0].update(data)
                except BaseException as exc:  # handed to the caller in finish()
                    self._error = exc

    def feed(self, hasher: Hasher) -> Feed:
        """A stand-in for ``hasher`` whose updates run on the worker."""
        earlier = self._latest.get(id(hasher))
        if earlier is not None:
            earlier.flush()  # a hasher's updates stay in order across its feeds
        feed = Feed(self._queue, hasher)
        self._feeds.append(feed)
        self._latest[id(hasher)] = feed
        return feed

    def finish(self) -> None:
        """Wait until every update fed so far has been applied (re-raising an update's error)."""
        for feed in self._feeds:
            feed.flush()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop without waiting (after a failure): the worker ends at its next item.

        Never blocks: after a Ctrl-C the queue's lock may be held by an interrupted put, and
        the worker is a daemon thread that dies with the process in any case.
        """
        self._abandoned = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)


class Feed:
    """Queues updates for one hasher on a :class:`HashWorker`, in batches."""

    def __init__(self, jobs: queue.Queue[tuple[Any, list[bytes]] | None], hasher: Hasher) -> None:
        self._jobs = jobs
        self._hasher = hasher
        self._pending: list[bytes] = []
        self._size = 0

    def update(self, data: bytes) -> None:
        """Queue ``data`` (copied when it is a mutable buffer, so the caller may reuse it)."""
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand what is pending to the worker."""
        if self._pending:
            self._jobs.put((self._hasher, self._pending))
            self._pending, self._size = [], 0


@contextlib.contextmanager
def hashing() -> Iterator[HashWorker]:
    """A :class:`HashWorker` that has applied every update when the block ends normally, and is
    abandoned when it raises."""
    worker = HashWorker()
    try:
        yield worker
    except BaseException:
        worker.abandon()
        raise
    worker.finish()
