"""Settings that would break later are refused when they are set (exit 2, nothing changed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli

REFUSED = [
    ("status-url", "notaurl"),
    ("status-url", "ftp://example.org/status/"),
    ("status-url", "https://"),
    ("status-url", "http://[::1"),
    ("status-url", "https://exa mple.org/"),
    ("ethereum.rpc-url", "localhost:8545"),
    ("ledger", "blockchain-of-my-own"),
    ("ethereum.key-file", "/nonexistent/key.txt"),
    ("max-expiry-days", "99999999999999999999"),
    ("max-expiry-days", "٣"),
    ("clock-skew-seconds", "²"),
    ("ethereum.chain-id", "0"),
    ("did-web", "did:web:"),
]


@pytest.mark.parametrize(("key", "value"), REFUSED)
def test_a_value_that_would_break_later_is_refused_when_set(wallet: Cli, key: str,
                                                            value: str) -> None:
    before = wallet.ok("config", "list", "--json").json()
    result = wallet("config", "set", key, value)
    assert result.code == 2, result
    assert result.err.startswith("error: ") and "\nhint: " in result.err
    assert "Traceback" not in result.err
    assert wallet.ok("config", "list", "--json").json() == before


def test_values_that_work_are_accepted(wallet: Cli, tmp_path: Path) -> None:
    key_file = tmp_path / "eth.key"
    key_file.write_text("0x" + "11" * 32)
    for key, value in (("status-url", "https://ana.example/status/"),
                       ("ethereum.rpc-url", "http://127.0.0.1:8545"), ("ledger", "local"),
                       ("ethereum.key-file", str(key_file)), ("max-expiry-days", "3650"),
                       ("clock-skew-seconds", "0"), ("status-url", "")):
        wallet.ok("config", "set", key, value)


def test_a_grant_after_a_refused_status_url_still_works(wallet: Cli, tmp_path: Path) -> None:
    assert wallet("config", "set", "status-url", "notaurl").code == 2
    doctor = Cli(tmp_path / "doc", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "doc")))
    doctor.ok("init", "--keystore", "file")
    labs = tmp_path / "labs.json"
    labs.write_text('{"resourceType": "Observation", "status": "final", "code": {"text": "x"}}')
    wallet.ok("record", "add", labs, "--tag", "t")
    wallet.ok("grant", doctor.ok("id").out.strip(), "--tag", "t", "--expires", "1d",
              "--out", tmp_path / "g.hwgrant")
