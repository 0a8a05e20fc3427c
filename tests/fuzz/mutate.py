"""Hypothesis strategies that damage real files: bytes, JSON members and framed headers."""

from __future__ import annotations

import copy
import json
import os
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hypothesis import strategies as st

from healthwallet.errors import EXIT_INTERNAL, HealthWalletError

DOCUMENTED_EXITS = {1, 2, 3, 4, 5}
PER_INPUT_SECONDS = 20.0  # generous: the CI machine may be shared; a hang is far longer

T = TypeVar("T")

# (test name, exit code) -> inputs run; printed at the end of the session (conftest.py).
RUNS: Counter[tuple[str, int]] = Counter()

# Any JSON value, small: what a type swap puts where a member was.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6,
)
TYPE_SWAPS = st.sampled_from([{"a": 1}, [1], 1, -1, 1.5, None, True, "", "x", [], {}, 10**30,
                              [{"a": 1}], "9" * 400]).map(copy.deepcopy) | JSON_VALUES


def expect_documented(run: Callable[[], T]) -> T | None:
    """Run one parse; pass on success or a documented error, fail on anything else or slowness.

    A crash (any exception that is not the project's error family) propagates, so Hypothesis
    shrinks it and reports the input.
    """
    started = time.monotonic()
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
    try:
        result = run()
        RUNS[test, 0] += 1
        return result
    except HealthWalletError as exc:
        assert exc.exit_code != EXIT_INTERNAL, f"internal error for bad input: {exc.message}"
        assert exc.exit_code in DOCUMENTED_EXITS, exc.exit_code
        RUNS[test, exc.exit_code] += 1
        return None
    finally:
        elapsed = time.monotonic() - started
        assert elapsed < PER_INPUT_SECONDS, f"one input took {elapsed:.1f} s"


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*path, index))


# Values a signer accepts in place of any member (no new JSON-LD terms): for signed mutations.
SIGNABLE_SWAPS = st.sampled_from([1, -1, 1.5, None, True, "", "x", "9" * 400, "2026-13-45"]).map(
    copy.deepcopy
) | st.lists(st.integers() | st.text(max_size=5), max_size=3)


@st.composite
def mutated_json(
    draw: st.DrawFn, document: Any, swaps: st.SearchStrategy[Any] = TYPE_SWAPS
) -> Any:
    """``document`` with one to three members deleted, type-swapped, wrapped or added to."""
    doc = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return draw(swaps)
        # JSON-LD contexts are large and refused early as a whole: aim mostly at the claims.
        claims = [p for p in paths if "@context" not in p]
        path = draw(st.sampled_from(claims if claims and draw(st.integers(0, 4)) else paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        op = draw(st.sampled_from(["delete", "swap", "swap", "wrap", "grow"]))
        if op == "delete":
            del parent[key]
        elif op == "swap":
            parent[key] = draw(swaps)
        elif op == "wrap":
            parent[key] = [parent[key]]
        elif isinstance(parent[key], list):
            parent[key].append(draw(swaps))
        elif isinstance(parent[key], dict) and swaps is TYPE_SWAPS:
            parent[key][draw(st.text(max_size=8))] = draw(swaps)
        else:
            parent[key] = draw(swaps)
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with bit flips, a truncation, an insertion or a cut-and-splice."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "flip", "truncate", "insert", "delete", "byte"]))
        if not out:
            out.extend(draw(st.binary(min_size=1, max_size=8)))
            continue
        at = draw(st.integers(0, len(out) - 1))
        if op == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            out[at] = draw(st.sampled_from(b'\x00\xff"{}[],:\\\n0-.eE'))
        elif op == "truncate":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw(st.binary(max_size=16))
        else:
            del out[at : at + draw(st.integers(1, 64))]
    return bytes(out)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def split_framed(data: bytes, magic: bytes) -> tuple[Any, bytes]:
    """(header JSON, payload) of a magic + 4-byte length + JSON header file."""
    start = len(magic)
    (length,) = struct.unpack(">I", data[start : start + 4])
    return json.loads(data[start + 4 : start + 4 + length]), data[start + 4 + length :]


def frame(magic: bytes, header: Any, payload: bytes) -> bytes:
    raw = canonical(header)
    return magic + struct.pack(">I", len(raw)) + raw + payload


def framed_file(data: bytes, magic: bytes) -> st.SearchStrategy[bytes]:
    """A framed file damaged in its header's members (framing kept valid) or in raw bytes."""
    header, payload = split_framed(data, magic)
    structured = mutated_json(header).map(lambda h: frame(magic, h, payload))
    return st.one_of(structured, structured, mutated_bytes(data))


def json_file(data: bytes) -> st.SearchStrategy[bytes]:
    """A JSON file damaged in its members, in its bytes, or replaced by generated JSON."""
    document = json.loads(data)
    return st.one_of(
        mutated_json(document).map(lambda d: json.dumps(d).encode()),
        mutated_json(document).map(lambda d: json.dumps(d).encode()),
        mutated_bytes(data),
        JSON_VALUES.map(lambda d: json.dumps(d).encode()),
        st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * (n % 3)),
        st.binary(max_size=64),
    )
