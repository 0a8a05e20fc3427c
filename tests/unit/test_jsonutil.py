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
