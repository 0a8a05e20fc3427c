"""The keys an agent holds: in one locked, never-dumped memory page, each with its deadline."""

from __future__ import annotations

import ctypes
import mmap
import time
from collections.abc import Callable
from dataclasses import dataclass

from .wire import KEY_BYTES

_PAGE_BYTES = mmap.PAGESIZE
MAX_KEYS = _PAGE_BYTES // KEY_BYTES


class SecretPage:
    """One anonymous memory page for key bytes: mlock-ed and excluded from core dumps where the
    platform allows it, and zeroed when a key is forgotten or the page is closed."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, _PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.locked = _mlock(self._page)
        dontdump = getattr(mmap, "MADV_DONTDUMP", None)
        if dontdump is not None:
            try:
                self._page.madvise(dontdump)
            except OSError:
                pass

    def write(self, slot: int, key: bytes) -> None:
        """Put ``key`` into ``slot``."""
        start = slot * KEY_BYTES
        self._page[start : start + KEY_BYTES] = key

    def read(self, slot: int) -> bytes:
        """The key in ``slot`` (a short-lived copy for the reply)."""
        start = slot * KEY_BYTES
        return self._page[start : start + KEY_BYTES]

    def wipe(self, slot: int) -> None:
        """Zero ``slot``."""
        self.write(slot, bytes(KEY_BYTES))

    def close(self) -> None:
        """Zero the whole page and unmap it."""
        self._page[:] = bytes(_PAGE_BYTES)
        self._page.close()


def _mlock(page: mmap.mmap) -> bool:
    """Keep ``page`` out of swap (best effort: RLIMIT_MEMLOCK or the platform may refuse)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mlock = libc.mlock
    except (OSError, AttributeError):
        return False
    buffer = (ctypes.c_char * _PAGE_BYTES).from_buffer(page)
    try:
        mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        mlock.restype = ctypes.c_int
        return int(mlock(ctypes.addressof(buffer), _PAGE_BYTES)) == 0
    finally:
        del buffer  # the page cannot be closed while a ctypes view of it exists


@dataclass
class _Entry:
    slot: int
    expires: float


class KeyTable:
    """Keys by id, each forgotten at its deadline; ``clock`` is injectable (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._page = SecretPage()
        self._entries: dict[str, _Entry] = {}
        self.held_once = False  # whether any key was ever added

    @property
    def memory_locked(self) -> bool:
        """Whether the key page is mlock-ed."""
        return self._page.locked

    def add(self, key_id: str, key: bytes, seconds: int) -> None:
        """Hold ``key`` under ``key_id`` for ``seconds`` from now (replacing an older entry)."""
        if len(key) != KEY_BYTES:
            raise ValueError("a key is 32 bytes")
        entry = self._entries.get(key_id)
        if entry is None:
            used = {e.slot for e in self._entries.values()}
            free = [s for s in range(MAX_KEYS) if s not in used]
            if not free:
                raise OverflowError("the agent holds as many keys as it can")
            entry = _Entry(free[0], 0.0)
            self._entries[key_id] = entry
        self._page.write(entry.slot, key)
        self.held_once = True
        entry.expires = self.clock() + seconds

    def get(self, key_id: str) -> bytes | None:
        """The key held under ``key_id``, or None (never held, or past its deadline)."""
        self.expire()
        entry = self._entries.get(key_id)
        return None if entry is None else self._page.read(entry.slot)

    def seconds_left(self) -> dict[str, int]:
        """Each key id held, with the whole seconds until it is forgotten."""
        self.expire()
        now = self.clock()
        return {key_id: max(0, int(e.expires - now)) for key_id, e in self._entries.items()}

    def next_deadline(self) -> float | None:
        """The soonest deadline (clock time), or None when nothing is held."""
        return min((e.expires for e in self._entries.values()), default=None)

    def expire(self) -> None:
        """Forget every key past its deadline."""
        now = self.clock()
        for key_id in [k for k, e in self._entries.items() if e.expires <= now]:
            self._forget(key_id)

    def forget_all(self) -> int:
        """Forget every key; how many there were."""
        count = len(self._entries)
        for key_id in list(self._entries):
            self._forget(key_id)
        return count

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Forget everything and release the page."""
        self.forget_all()
        self._page.close()

    def _forget(self, key_id: str) -> None:
        entry = self._entries.pop(key_id)
        self._page.wipe(entry.slot)
