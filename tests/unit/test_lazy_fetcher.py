"""The CLI's fetcher, made on first use, answers every call the real guarded fetcher does."""

from __future__ import annotations

import inspect

from healthwallet.cli import _common
from healthwallet.httpfetch import Fetcher


def test_lazy_fetcher_forwards_every_public_method_with_the_same_signature() -> None:
    lazy = _common._FetcherOnFirstUse
    for name, member in inspect.getmembers(Fetcher, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert hasattr(lazy, name), f"the CLI's lazy fetcher lacks Fetcher.{name}"
        assert inspect.signature(getattr(lazy, name)) == inspect.signature(member), name
