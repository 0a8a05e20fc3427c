"""Deeply nested JSON is refused, never a crash, even when a library raised the recursion limit."""

from __future__ import annotations

import sys

import pytest

from healthwallet import jsonutil


@pytest.fixture
def raised_recursion_limit():  # type: ignore[no-untyped-def]
    """What py_ecc (imported by eth-account) does to the whole process."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    yield
    sys.setrecursionlimit(previous)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000])
def test_deep_nesting_is_a_value_error(raised_recursion_limit: None, text: str) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonutil.loads(text)
    assert sys.getrecursionlimit() == 100_000  # restored


def test_ordinary_json_and_moderate_nesting() -> None:
    assert jsonutil.loads(b'{"a": [1, 2, {"b": null}]}') == {"a": [1, 2, {"b": None}]}
    assert jsonutil.loads("[" * 200 + "]" * 200) is not None
    with pytest.raises(ValueError):
        jsonutil.loads("{not json")


def test_importing_the_ethereum_backend_keeps_the_recursion_limit() -> None:
    from healthwallet.ledger import ethereum

    before = sys.getrecursionlimit()
    ethereum._account()
    assert sys.getrecursionlimit() == before


@pytest.mark.parametrize("text, reason", [
    ('{"a": 1, "a": 2}', "same member twice"),
    ('{"a": NaN}', "NaN is not JSON"),
    ("[Infinity]", "Infinity is not JSON"),
    ('{"a": -Infinity}', "-Infinity is not JSON"),
    ('{"a": ', "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_refusals_are_bad_input_and_value_errors(text: str | bytes, reason: str) -> None:
    with pytest.raises(jsonutil.JsonInputError, match=reason) as caught:
        jsonutil.loads(text, what="the file")
    assert isinstance(caught.value, ValueError)
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith("the file")


def test_size_cap_is_checked_before_parsing() -> None:
    with pytest.raises(jsonutil.JsonInputError, match="too large"):
        jsonutil.loads(b"[" + b"1," * 100 + b"1]", max_bytes=50)


@pytest.mark.parametrize("value, call", [
    ({"a": 5}, lambda v: jsonutil.text(v, "a", "the doc")),
    ({"a": True}, lambda v: jsonutil.whole(v, "a", "the doc")),
    ({"a": [1]}, lambda v: jsonutil.obj(v, "a", "the doc")),
    ({}, lambda v: jsonutil.text(v, "a", "the doc")),
    ([1], lambda v: jsonutil.text(v, "a", "the doc")),
    ({"a": ["x", {"b": 1}]}, lambda v: jsonutil.str_list(v, "a", "the doc")),
])
def test_typed_accessors_raise_bad_input_naming_the_member(value: object, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(jsonutil.BadInputError, match="the doc"):
        call(value)


def test_typed_accessors_return_the_member() -> None:
    doc = {"s": "x", "n": 3, "o": {}, "l": ["a"], "z": None}
    assert jsonutil.text(doc, "s", "d") == "x"
    assert jsonutil.whole(doc, "n", "d") == 3
    assert jsonutil.obj(doc, "o", "d") == {}
    assert jsonutil.str_list(doc, "l", "d") == ["a"]
    assert jsonutil.optional(doc, "z", str, "d") is None
    assert jsonutil.optional(doc, "missing", str, "d") is None
