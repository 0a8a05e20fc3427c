"""JSON parsing of untrusted input that fails cleanly on absurd nesting.

CPython's C JSON decoder recurses once per nesting level and relies on the interpreter's
recursion limit to stop. Some libraries raise that limit for the whole process (py_ecc,
pulled in by eth-account, sets 100,000), after which ``"[" * 100000`` overflows the C stack
and kills the process. ``loads`` caps the limit while it parses and turns RecursionError
into ValueError, which callers already treat as "not valid JSON".
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

MAX_NESTING = 500


def _frame_depth() -> int:
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


@contextlib.contextmanager
def recursion_cap(levels: int) -> Iterator[None]:
    """Allow at most ``levels`` more Python frames inside the block (RecursionError beyond)."""
    previous = sys.getrecursionlimit()
    cap = _frame_depth() + levels
    if previous > cap:
        sys.setrecursionlimit(cap)
    try:
        yield
    finally:
        if previous > cap:
            sys.setrecursionlimit(previous)


def loads(data: str | bytes | bytearray, **kwargs: Any) -> Any:
    """``json.loads`` that raises ValueError instead of crashing on deep nesting."""
    with recursion_cap(MAX_NESTING):
        try:
            return json.loads(data, **kwargs)
        except RecursionError:
            raise ValueError("JSON is nested too deeply") from None
