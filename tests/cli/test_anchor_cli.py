"""`healthwallet anchor` end to end: the local log by default, a real Anvil node for ethereum."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import Cli
from ledger.conftest import CHAIN_ID, DEV_KEY, free_port, start_anvil
from local_status import typing_status_lists


def _add_records(wallet: Cli, tmp_path: Path, count: int) -> list[str]:
    ids = []
    for i in range(count):
        path = tmp_path / f"r{i}.pdf"
        path.write_bytes(b"%PDF-1.4 record " + str(i).encode() * 50)
        ids.append(wallet.ok("record", "add", path, "--json").json()["records"][0]["id"])
    return ids


def test_local_anchor_status_verify_and_tamper(wallet: Cli, tmp_path: Path) -> None:
    assert wallet.ok("ledger", "list", "--json").json()["ledgers"] == ["ethereum", "local"]
    ids = _add_records(wallet, tmp_path, 5)
    assert wallet.ok("anchor", "status", "--json").json()["pending"] == 5
    first = wallet.ok("anchor", "--json").json()
    assert first["count"] == 5 and first["ledger"] == "local" and len(first["root"]) == 64
    assert set(first) >= {"root", "ledger", "receipt", "count", "anchored_at"}
    nothing = wallet.ok("anchor")
    assert "Nothing to anchor" in nothing.out
    assert wallet.ok("anchor", "--json").json()["count"] == 0
    status = wallet.ok("anchor", "status", "--json").json()
    assert (status["pending"], status["anchored"], status["confirmed"]) == (0, 5, 5)
    # one more record: the next batch holds only it
    extra = tmp_path / "extra.pdf"
    extra.write_bytes(b"%PDF-1.4 extra")
    wallet.ok("record", "add", extra)
    assert wallet.ok("anchor", "--json").json()["count"] == 1

    verdict = wallet.ok("anchor", "verify", ids[2], "--json").json()
    assert verdict["valid"] is True and verdict["root"] == first["root"]
    assert set(verdict) >= {"record", "root", "ledger", "anchored_at", "valid"}

    # change the time of the first local log entry: verification fails and names the entry
    db = sqlite3.connect(wallet.home / "ledger-local.sqlite")
    db.execute("UPDATE entries SET time = '2020-01-01T00:00:00Z' WHERE seq = 1")
    db.commit()
    db.close()
    broken = wallet("anchor", "verify", ids[2], "--json")
    assert broken.code == 1
    assert broken.json()["valid"] is False
    assert any("entry 1" in problem for problem in broken.json()["problems"]), broken.json()


def test_ethereum_unreachable_then_anchored_once(wallet: Cli, tmp_path: Path) -> None:
    ids = _add_records(wallet, tmp_path, 3)
    port = free_port()
    wallet.ok("config", "set", "ledger", "ethereum")
    wallet.ok("config", "set", "ethereum.rpc-url", f"http://127.0.0.1:{port}")
    wallet.ok("config", "set", "ethereum.chain-id", str(CHAIN_ID))
    wallet.ok("config", "set", "ethereum.confirmations", "2")
    env = {"HEALTHWALLET_ETH_KEY": DEV_KEY}
    down = wallet("anchor", "--json", env=env)
    assert down.code == 5, down
    assert down.err.startswith("error: ") and "Traceback" not in down.err
    assert DEV_KEY[2:] not in down.err + down.out
    assert wallet.ok("anchor", "status", "--json", env=env).json()["pending"] == 3

    node = start_anvil(port)
    try:
        published = wallet.ok("anchor", "--json", env=env).json()
        assert published["count"] == 3 and published["ledger"] == "ethereum"
        assert node.nonce() == 1
        status = wallet.ok("anchor", "status", "--json", env=env).json()
        assert status["anchored"] == 3 and status["confirmed"] == 0  # not deep enough yet
        node.mine(3)
        status = wallet.ok("anchor", "status", "--json", env=env).json()
        assert status["confirmed"] == 3
        verdict = wallet.ok("anchor", "verify", ids[0], "--json", env=env).json()
        assert verdict["valid"] is True and verdict["ledger"] == "ethereum"
        assert wallet.ok("anchor", "--json", env=env).json()["count"] == 0
        assert node.nonce() == 1, "nothing is anchored twice"
    finally:
        node.stop()
    offline = wallet.ok("anchor", "verify", ids[0], "--offline", "--json", env=env).json()
    assert offline["valid"] is True
    assert wallet("anchor", "verify", ids[0], "--json", env=env).code == 5


def test_grant_carries_proofs_and_verify_checks_the_ledger(wallet: Cli, tmp_path: Path) -> None:
    from conftest import base_env

    node = start_anvil()
    env = {"HEALTHWALLET_ETH_KEY": DEV_KEY}
    try:
        for key, value in (("ledger", "ethereum"), ("ethereum.rpc-url", node.url),
                           ("ethereum.chain-id", str(CHAIN_ID)), ("ethereum.confirmations", "2")):
            wallet.ok("config", "set", key, value)
        ids = _add_records(wallet, tmp_path, 2)
        wallet.ok("anchor", env=env)
        node.mine(3)
        doctor_env = dict(base_env(tmp_path), HEALTHWALLET_HOME=str(tmp_path / "doctor"),
                          HEALTHWALLET_PASSPHRASE="doctor passphrase")
        doctor = typing_status_lists(Cli(tmp_path / "doctor", doctor_env))
        doctor.ok("init", "--keystore", "file")
        doctor.ok("config", "set", "ethereum.rpc-url", node.url)
        doctor.ok("config", "set", "ethereum.chain-id", str(CHAIN_ID))
        doctor.ok("config", "set", "ethereum.confirmations", "2")
        grant_file = tmp_path / "g.hwgrant"
        wallet.ok("grant", doctor.ok("id").out.strip(), "--record", ids[0], "--record", ids[1],
                  "--expires", "1d", "--out", grant_file)
        offline = doctor.ok("verify", grant_file, "--json").json()
        assert [r["ledger"] for r in offline["records"]] == ["ethereum", "ethereum"]
        assert all(r["anchored_at"] for r in offline["records"])
        assert next(c for c in offline["checks"] if c["name"] == "anchors")["ok"] is True
        online = doctor.ok("verify", grant_file, "--check-ledger", "--json").json()
        assert online["valid"] is True
        human = doctor.ok("verify", grant_file).out
        assert "anchored at" in human and "on ethereum" in human
    finally:
        node.stop()
    # the ledger is gone: asked explicitly, the anchors check fails; offline it still passes
    down = doctor("verify", grant_file, "--check-ledger", "--json")
    assert down.code == 1
    anchors = next(c for c in down.json()["checks"] if c["name"] == "anchors")
    assert anchors["ok"] is False and "could not be asked" in anchors["detail"]
    assert doctor("verify", grant_file).code == 0
