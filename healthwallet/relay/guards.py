"""The relay's bounds on work: a per-IP request rate, and a small pool for passcode hashes."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import anyio.to_thread
from nacl import exceptions as nacl_exceptions
from nacl import pwhash

MAX_TRACKED_CLIENTS = 50_000


class RateLimiter:
    """A token bucket per client address: ``rate`` per second, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """0 when the request may proceed (and is counted); else seconds to wait."""
        if self.rate <= 0:
            return 0
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            wait = 0
        else:
            self._buckets[client] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / self.rate))
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)  # forget the longest-idle client
        return wait


def hash_passcode(passcode: str, opslimit: int, memlimit: int) -> str:
    """The Argon2id hash string (salt and cost inside) of a passcode."""
    return pwhash.argon2id.str(
        passcode.encode("utf-8"), opslimit=opslimit, memlimit=memlimit
    ).decode("ascii")


def _matches(stored: str, passcode: str) -> bool:
    try:
        return bool(pwhash.argon2id.verify(stored.encode("ascii"), passcode.encode("utf-8")))
    except nacl_exceptions.InvalidkeyError:
        return False


class HashPool:
    """Runs at most ``workers`` Argon2id computations at once, each in a worker thread.

    ``try_enter`` is called on the event loop (single-threaded), so a plain counter is enough.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.busy = 0
        self._limiter = anyio.CapacityLimiter(max(1, workers))

    def try_enter(self) -> bool:
        """Take a slot, or False when every slot is busy (answer 429)."""
        if self.busy >= self.workers:
            return False
        self.busy += 1
        return True

    def leave(self) -> None:
        """Give back a slot taken by ``try_enter``."""
        self.busy -= 1

    async def verify(self, stored: str, passcode: str) -> bool:
        """Whether ``passcode`` matches the stored hash (caller holds a slot)."""
        return await anyio.to_thread.run_sync(_matches, stored, passcode, limiter=self._limiter)

    async def hash(self, passcode: str, opslimit: int, memlimit: int) -> str:
        """Hash a new passcode in a worker thread, within the same bound."""
        return await anyio.to_thread.run_sync(
            hash_passcode, passcode, opslimit, memlimit, limiter=self._limiter
        )
