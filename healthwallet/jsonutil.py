"""The one JSON loader for untrusted bytes: bounded depth and size, one spelling per member.

CPython's C JSON decoder recurses once per nesting level and relies on the interpreter's
recursion limit to stop. Some libraries raise that limit for the whole process (py_ecc,
pulled in by eth-account, sets 100,000), after which ``"[" * 100000`` overflows the C stack
and kills the process. ``loads`` caps the limit while it parses. It also refuses input larger
than ``max_bytes`` before parsing, a member written twice in one object (parsers disagree on
which one wins), and ``NaN``/``Infinity`` (not JSON). Every refusal is a
:class:`JsonInputError`: a ``BadInputError`` (exit 2) that is also a ``ValueError``, so callers
that turn "not valid JSON" into their own error keep doing so.

The typed accessors (``member``, ``text``, ``obj`` …) read a member of a parsed object as the
type the format promises, raising ``BadInputError`` (or the ``error`` class a caller names)
with the member's name when the bytes say otherwise: a list where an object belongs, a number
where a string belongs, a dict inside a list of strings.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn, TypeVar

from .errors import BadInputError, HealthWalletError

MAX_NESTING = 500
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SMALL_FILE_BYTES = 1024 * 1024  # wallet.json, config.json, identity.key and the like

_T = TypeVar("_T")


class JsonInputError(BadInputError, ValueError):
    """Bytes that are not acceptable JSON (exit 2; also a ValueError for older callers)."""


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


def _no_constant(text: str) -> Any:
    raise JsonInputError(f"{text} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise JsonInputError("a JSON object names the same member twice")
    return result


def loads(
    data: str | bytes | bytearray,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "input",
    **kwargs: Any,
) -> Any:
    """Parse untrusted JSON; JsonInputError (a BadInputError and a ValueError) on refusal.

    ``what`` names the input in the message ("the config file"); never its content.
    """
    if len(data) > max_bytes:
        raise JsonInputError(f"{what} is too large ({len(data)} bytes, at most {max_bytes})")
    if isinstance(data, bytes | bytearray):
        # UTF-8 only (a leading BOM is let through, as json.loads does); json.loads would
        # also guess UTF-16 and UTF-32, which no healthwallet format uses.
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise JsonInputError(f"{what} is not UTF-8 text") from None
    kwargs.setdefault("parse_constant", _no_constant)
    if "object_hook" not in kwargs:
        kwargs.setdefault("object_pairs_hook", _unique_members)
    with recursion_cap(MAX_NESTING):
        try:
            return json.loads(data, **kwargs)
        except JsonInputError as exc:
            raise JsonInputError(f"{what} is not acceptable JSON: {exc.message}") from None
        except RecursionError:
            raise JsonInputError(f"{what} is JSON nested too deeply") from None
        except ValueError as exc:
            raise JsonInputError(f"{what} is not valid JSON ({_position(exc)})") from None


def _position(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}"
    return "malformed"


def load_object(
    data: str | bytes | bytearray,
    what: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    error: type[HealthWalletError] = BadInputError,
    hint: str | None = None,
) -> dict[str, Any]:
    """Parse JSON that must be an object; ``error`` (default BadInputError) on anything else."""
    try:
        value = loads(data, max_bytes=max_bytes, what=what)
    except JsonInputError as exc:
        raise error(exc.message, hint) from None
    if not isinstance(value, dict):
        raise error(f"{what} is not a JSON object", hint)
    return value


# -- typed access to parsed members ------------------------------------------------------------


def _fail(error: type[HealthWalletError], message: str) -> NoReturn:
    raise error(message)


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "a whole number",
        dict: "an object",
        list: "a list",
        bool: "true or false",
        float: "a number",
    }
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def is_a(value: object, expected: type | tuple[type, ...]) -> bool:
    """``isinstance`` where JSON's true/false never pass for a number."""
    if isinstance(value, bool) and not (
        expected is bool or (isinstance(expected, tuple) and bool in expected)
    ):
        return False
    return isinstance(value, expected)


def member(
    value: object,
    key: str,
    expected: type[_T],
    what: str,
    error: type[HealthWalletError] = BadInputError,
) -> _T:
    """``value[key]`` checked to be an ``expected`` (``error`` names ``what`` and ``key``)."""
    if not isinstance(value, Mapping):
        _fail(error, f"{what} is not an object")
    if key not in value:
        _fail(error, f"{what}: no {key}")
    found = value[key]
    if not is_a(found, expected):
        _fail(error, f"{what}: {key} is not {_type_name(expected)}")
    result: _T = found
    return result


def optional(
    value: object,
    key: str,
    expected: type[_T],
    what: str,
    error: type[HealthWalletError] = BadInputError,
) -> _T | None:
    """Like ``member``, but a missing member (or null) is None."""
    if isinstance(value, Mapping) and value.get(key) is None:
        return None
    return member(value, key, expected, what, error)


def text(value: object, key: str, what: str, error: type[HealthWalletError] = BadInputError) -> str:
    """``value[key]`` as a string."""
    return member(value, key, str, what, error)


def obj(
    value: object, key: str, what: str, error: type[HealthWalletError] = BadInputError
) -> dict[str, Any]:
    """``value[key]`` as an object."""
    return member(value, key, dict, what, error)


def whole(
    value: object, key: str, what: str, error: type[HealthWalletError] = BadInputError
) -> int:
    """``value[key]`` as a whole number (never true/false)."""
    return member(value, key, int, what, error)


def items_of(
    value: object,
    expected: type[_T],
    what: str,
    error: type[HealthWalletError] = BadInputError,
) -> list[_T]:
    """``value`` as a list whose every item is an ``expected``."""
    if not isinstance(value, list):
        _fail(error, f"{what} is not a list")
    for item in value:
        if not is_a(item, expected):
            _fail(error, f"{what} holds an item that is not {_type_name(expected)}")
    return list(value)


def str_list(
    value: object, key: str, what: str, error: type[HealthWalletError] = BadInputError
) -> list[str]:
    """``value[key]`` as a list of strings."""
    return items_of(member(value, key, list, what, error), str, f"{what}: {key}", error)
