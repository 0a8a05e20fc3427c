"""Process hardening for commands that may hold the seed or plaintext: no core dumps.

A core dump of a process holding the identity seed, a passphrase or decrypted records writes
them to disk (or to a crash reporter) in the clear. Every command therefore sets its core-file
limit to zero and, on Linux, clears the "dumpable" flag (``prctl(PR_SET_DUMPABLE, 0)``), which
also keeps other processes of the same user from attaching to it or reading its memory through
``/proc``. Both are best effort: a platform without them runs on (docs/threat-model.md).
"""

from __future__ import annotations

import ctypes
import sys

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def disable_core_dumps() -> bool:
    """Forbid core dumps of this process; True when every available step took effect."""
    done = _zero_core_limit()
    if sys.platform.startswith("linux"):
        done = _prctl(PR_SET_DUMPABLE, 0) == 0 and done
    return done


def is_dumpable() -> bool | None:
    """Whether this process may dump core (Linux; None where it cannot be told)."""
    if not sys.platform.startswith("linux"):
        return None
    result = _prctl(PR_GET_DUMPABLE, 0)
    return None if result < 0 else bool(result)


def _zero_core_limit() -> bool:
    try:
        import resource
    except ImportError:  # not on this platform (Windows)
        return False
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        return False
    return True


def _prctl(option: int, value: int) -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return -1
    prctl.restype = ctypes.c_int
    zero = ctypes.c_ulong(0)
    return int(prctl(ctypes.c_int(option), ctypes.c_ulong(value), zero, zero, zero))
