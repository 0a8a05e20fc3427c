"""The backend interface: entry points, receipts, the context, the Anvil fixture rule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from healthwallet.errors import BadInputError, UsageError
from healthwallet.ledger import (
    ENTRY_POINT_GROUP,
    Ledger,
    LedgerContext,
    Receipt,
    available_ledgers,
    load_ledger,
)
from healthwallet.ledger.base import format_time, parse_time
from healthwallet.ledger.local import LocalLedger

from . import conftest


def test_builtin_backends_are_registered() -> None:
    assert ENTRY_POINT_GROUP == "healthwallet.ledgers"
    assert {"local", "ethereum"} <= set(available_ledgers())


def test_load_local(local_ctx: LedgerContext) -> None:
    ledger = load_ledger("local", local_ctx)
    assert isinstance(ledger, LocalLedger) and isinstance(ledger, Ledger)
    assert ledger.name == "local"


def test_unknown_backend_is_a_usage_error(home: Path) -> None:
    with pytest.raises(UsageError, match="no ledger backend named 'bitcoin'") as caught:
        load_ledger("bitcoin", LedgerContext(home=home))
    assert "local" in caught.value.hint


def test_receipt_json_round_trip() -> None:
    receipt = Receipt("local", b"\x01" * 32, {"seq": 3})
    text = receipt.to_json()
    assert text == {"version": 1, "ledger": "local", "root": "01" * 32, "details": {"seq": 3}}
    assert Receipt.from_json(text) == receipt


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"version": 2, "ledger": "local", "root": "01" * 32, "details": {}},
        {"version": 1, "ledger": "", "root": "01" * 32, "details": {}},
        {"version": 1, "ledger": "local", "root": "01" * 31, "details": {}},
        {"version": 1, "ledger": "local", "root": "01" * 32, "details": []},
    ],
)
def test_malformed_receipts_are_refused(value: object) -> None:
    with pytest.raises(BadInputError):
        Receipt.from_json(value)


def test_time_format_and_context_clock(home: Path) -> None:
    moment = datetime(2025, 1, 31, 12, 0, 5, 999, tzinfo=UTC)
    assert format_time(moment) == "2025-01-31T12:00:05Z"
    assert parse_time("2025-01-31T12:00:05Z") == moment.replace(microsecond=0)
    with pytest.raises(ValueError):
        format_time(datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        LedgerContext(home=home, clock=lambda: datetime(2025, 1, 1)).now()


def test_missing_anvil_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(conftest, "ANVIL_CANDIDATES", [tmp_path / "no-anvil"])
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="anvil not installed"):
        conftest.anvil_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="anvil not installed"):
        conftest.anvil_binary()
