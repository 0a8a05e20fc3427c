"""The ethereum backend against a real Anvil node (no stand-in for the node)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import keyring
import keyring.backends.fail
import pytest
from eth_account import Account

from healthwallet.anchors import AnchorStore
from healthwallet.errors import KeystoreError, LedgerUnavailableError, NotFoundError, UsageError
from healthwallet.ledger.base import LedgerContext, Receipt, load_ledger
from healthwallet.ledger.ethereum import (
    ANCHOR_TAG,
    INTENTS_FILE,
    EthereumLedger,
    anchor_calldata,
)

from .conftest import (
    CHAIN_ID,
    DEV_ADDRESS,
    DEV_KEY,
    Anvil,
    eth_ctx,
    free_port,
    start_anvil,
)

pytestmark = pytest.mark.integration

ROOT_A = b"\xa1" * 32
ROOT_B = b"\xb2" * 32
VAULT = {f"rec-{i}": hashlib.sha256(f"record {i}".encode()).hexdigest() for i in range(5)}


class FaultyTransport(httpx.BaseTransport):
    """A real HTTP transport that loses one JSON-RPC call, before or after the node gets it."""

    def __init__(self, method: str, when: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.method, self.when, self.tripped = method, when, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.tripped and json.loads(request.read()).get("method") == self.method:
            self.tripped = True
            if self.when == "before":
                raise httpx.ConnectError("connection dropped", request=request)
            response = self.inner.handle_request(request)
            response.read()
            response.close()
            raise httpx.ReadTimeout("answer lost", request=request)
        return self.inner.handle_request(request)


@pytest.fixture
def faulty() -> Iterator[list[FaultyTransport]]:
    made: list[FaultyTransport] = []
    yield made
    for transport in made:
        transport.inner.close()


def ledger_for(home: Path, node: Anvil, **kwargs: Any) -> EthereumLedger:
    return EthereumLedger(eth_ctx(home, node.url, **kwargs))


def test_publish_sends_a_self_transaction_with_tag_and_root(home: Path, anvil: Anvil) -> None:
    ledger = ledger_for(home, anvil, confirmations=3)
    receipt = ledger.publish(ROOT_A)
    assert receipt.ledger == "ethereum" and receipt.root == ROOT_A
    assert receipt.details["chain_id"] == CHAIN_ID and receipt.details["sender"] == DEV_ADDRESS
    tx = anvil.call("eth_getTransactionByHash", receipt.details["tx_hash"])
    assert bytes.fromhex(tx["input"][2:]) == ANCHOR_TAG + ROOT_A == anchor_calldata(ROOT_A)
    assert tx["from"].lower() == tx["to"].lower() == DEV_ADDRESS.lower()
    assert int(tx["value"], 16) == 0

    first = ledger.lookup(receipt)
    assert first.root == ROOT_A and first.problem is None
    assert first.confirmations == 1 and not first.confirmed  # needs 3
    anvil.mine(2)
    deep = ledger.lookup(receipt)
    assert deep.confirmed and deep.confirmations == 3
    block = anvil.call("eth_getBlockByNumber", tx["blockNumber"], False)
    assert deep.anchored_at is not None
    assert int(deep.anchored_at.timestamp()) == int(block["timestamp"], 16)


def test_publish_is_idempotent_per_root(home: Path, anvil: Anvil) -> None:
    ledger = ledger_for(home, anvil)
    first = ledger.publish(ROOT_A)
    assert ledger.publish(ROOT_A) == first
    assert anvil.nonce() == 1
    assert ledger.publish(ROOT_B) != first
    assert anvil.nonce() == 2


def test_loaded_through_the_entry_point(home: Path, anvil: Anvil) -> None:
    ledger = load_ledger("ethereum", eth_ctx(home, anvil.url))
    assert isinstance(ledger, EthereumLedger)
    assert ledger.sender_address() == DEV_ADDRESS


def test_anchor_and_verify_through_the_store(home: Path, anvil: Anvil) -> None:
    ledger = ledger_for(home, anvil, confirmations=2)
    with AnchorStore(home) as store:
        outcome = store.anchor_pending(VAULT, ledger).to_json()
        assert outcome["count"] == 5 and outcome["ledger"] == "ethereum"
        assert outcome["anchored_at"] is not None
        assert anvil.nonce() == 1
        assert store.status(VAULT, ledger).to_json() == {
            "pending": 0,
            "anchored": 5,
            "confirmed": 0,
        }
        verdict = store.verify_record("rec-3", VAULT["rec-3"], ledger)
        assert verdict.problems == ("ledger: not confirmed yet (1 confirmations)",)
        anvil.mine(1)
        assert store.status(VAULT, ledger).to_json() == {
            "pending": 0,
            "anchored": 5,
            "confirmed": 5,
        }
        verdict = store.verify_record("rec-3", VAULT["rec-3"], ledger)
        assert verdict.valid, verdict.problems
        assert verdict.to_json()["anchored_at"] == outcome["anchored_at"]


def test_status_with_an_unreachable_node_keeps_the_stored_counts(home: Path, anvil: Anvil) -> None:
    with AnchorStore(home) as store:
        store.anchor_pending(VAULT, ledger_for(home, anvil, confirmations=5))
        down = EthereumLedger(eth_ctx(home, f"http://127.0.0.1:{free_port()}", confirmations=5))
        status = store.status(VAULT, down)
        assert status.to_json() == {"pending": 0, "anchored": 5, "confirmed": 0}
        assert len(status.problems) == 1
        assert status.problems[0].startswith("confirmations not refreshed: ethereum node at")
        with pytest.raises(LedgerUnavailableError):
            store.verify_record("rec-0", VAULT["rec-0"], down)


def test_unreachable_node_keeps_the_batch_pending_then_publishes_it_once(home: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ledger = EthereumLedger(eth_ctx(home, url, timeout=2))
    with AnchorStore(home) as store:
        with pytest.raises(LedgerUnavailableError, match=r"127\.0\.0\.1 is unreachable"):
            store.anchor_pending(VAULT, ledger)
        assert store.status(VAULT).to_json() == {"pending": 5, "anchored": 0, "confirmed": 0}
        with pytest.raises(NotFoundError, match="not anchored yet"):
            store.proof_for("rec-0")
        with pytest.raises(LedgerUnavailableError):  # still down: still pending, nothing lost
            store.anchor_pending(VAULT, ledger)

        node = start_anvil(port)  # the node comes back
        try:
            outcome = store.anchor_pending(VAULT, ledger)
            assert outcome.count == 5 and len(outcome.batches) == 1
            assert node.nonce() == 1
            assert store.anchor_pending(VAULT, ledger).count == 0
            assert node.nonce() == 1  # nothing anchored twice
            assert store.status(VAULT, ledger).to_json() == {
                "pending": 0,
                "anchored": 5,
                "confirmed": 5,
            }
        finally:
            node.stop()


def test_answer_lost_after_sending_does_not_anchor_twice(
    home: Path, anvil: Anvil, faulty: list[FaultyTransport]
) -> None:
    transport = FaultyTransport("eth_sendRawTransaction", "after")
    faulty.append(transport)
    flaky = EthereumLedger(eth_ctx(home, anvil.url, transport=transport))
    with AnchorStore(home) as store:
        with pytest.raises(LedgerUnavailableError):
            store.anchor_pending(VAULT, flaky)
        assert anvil.nonce() == 1  # the node did get it
        assert store.status(VAULT).pending == 5
        outcome = store.anchor_pending(VAULT, ledger_for(home, anvil))
        assert outcome.count == 5
        assert anvil.nonce() == 1


def test_crash_after_signing_before_sending_rebroadcasts_the_same_transaction(
    home: Path, anvil: Anvil, faulty: list[FaultyTransport]
) -> None:
    transport = FaultyTransport("eth_sendRawTransaction", "before")
    faulty.append(transport)
    with pytest.raises(LedgerUnavailableError):
        EthereumLedger(eth_ctx(home, anvil.url, transport=transport)).publish(ROOT_A)
    assert anvil.nonce() == 0
    conn = sqlite3.connect(home / INTENTS_FILE)
    try:
        (journaled,) = conn.execute("SELECT tx_hash FROM intents").fetchone()
    finally:
        conn.close()
    receipt = ledger_for(home, anvil).publish(ROOT_A)
    assert receipt.details["tx_hash"] == journaled
    assert anvil.nonce() == 1


def test_stale_intent_is_replaced_when_its_nonce_was_used(
    home: Path, anvil: Anvil, faulty: list[FaultyTransport]
) -> None:
    transport = FaultyTransport("eth_sendRawTransaction", "before")
    faulty.append(transport)
    with pytest.raises(LedgerUnavailableError):
        EthereumLedger(eth_ctx(home, anvil.url, transport=transport)).publish(ROOT_A)
    ledger_for(home, anvil).publish(ROOT_B)  # another anchor takes nonce 0
    receipt = ledger_for(home, anvil).publish(ROOT_A)
    assert anvil.nonce() == 2
    assert ledger_for(home, anvil).lookup(receipt).confirmed


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


class CrashAfterPublish:
    def __init__(self, inner: EthereumLedger) -> None:
        self.inner, self.name = inner, inner.name

    def publish(self, root: bytes) -> Receipt:
        self.inner.publish(root)
        raise Crash

    def lookup(self, receipt: Receipt) -> Any:
        return self.inner.lookup(receipt)


def test_crash_between_publish_and_saving_the_receipt(home: Path, anvil: Anvil) -> None:
    with AnchorStore(home) as store, pytest.raises(Crash):
        store.anchor_pending(VAULT, CrashAfterPublish(ledger_for(home, anvil)))
    with AnchorStore(home) as store:
        outcome = store.anchor_pending(VAULT, ledger_for(home, anvil))
        assert outcome.count == 5
        assert anvil.nonce() == 1


def test_failed_transaction_is_not_confirmed(home: Path, anvil: Anvil) -> None:
    # A contract whose code always reverts (PUSH1 0 PUSH1 0 REVERT).
    reverter = "0x000000000000000000000000000000000000dEaD"
    anvil.call("anvil_setCode", reverter, "0x60006000fd")
    signed = Account.from_key(DEV_KEY).sign_transaction(
        {"chainId": CHAIN_ID, "nonce": anvil.nonce(), "to": reverter, "value": 0,
         "data": anchor_calldata(ROOT_A), "gas": 100_000, "gasPrice": 10**10}
    )  # fmt: skip
    tx_hash = anvil.call("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    assert anvil.call("eth_getTransactionReceipt", tx_hash)["status"] == "0x0"
    receipt = Receipt(
        "ethereum", ROOT_A, {"chain_id": CHAIN_ID, "tx_hash": tx_hash, "sender": DEV_ADDRESS}
    )
    result = ledger_for(home, anvil).lookup(receipt)
    assert not result.confirmed
    assert result.problem is not None
    assert "transaction failed (status 0)" in result.problem
    assert "transaction is not a self-transaction" in result.problem


def test_receipt_that_does_not_match_the_calldata(home: Path, anvil: Anvil) -> None:
    ledger = ledger_for(home, anvil)
    real = ledger.publish(ROOT_A)
    forged = Receipt("ethereum", ROOT_B, real.details)
    result = ledger.lookup(forged)
    assert not result.confirmed and result.root == ROOT_A
    assert result.problem == "transaction calldata holds another root than the receipt"
    other_sender = Receipt("ethereum", ROOT_A, {**real.details, "sender": "0x" + "11" * 20})
    assert "another address" in (ledger.lookup(other_sender).problem or "")
    wrong_chain = Receipt("ethereum", ROOT_A, {**real.details, "chain_id": 1})
    assert ledger.lookup(wrong_chain).problem == f"receipt is for chain 1, not {CHAIN_ID}"


def test_tampered_receipt_in_the_store_fails_verification(home: Path, anvil: Anvil) -> None:
    ledger = ledger_for(home, anvil)
    other = ledger.publish(ROOT_B)  # some other anchor transaction on the chain
    with AnchorStore(home) as store:
        store.anchor_pending(VAULT, ledger)
        conn = sqlite3.connect(home / "anchors.sqlite", isolation_level=None)
        try:
            (text,) = conn.execute("SELECT receipt FROM batches").fetchone()
            receipt = json.loads(text)
            receipt["details"]["tx_hash"] = other.details["tx_hash"]
            conn.execute("UPDATE batches SET receipt = ?", (json.dumps(receipt),))
        finally:
            conn.close()
        verdict = store.verify_record("rec-1", VAULT["rec-1"], ledger)
        assert not verdict.valid
        assert verdict.problems == (
            "ledger holds another root than the proof",
            "ledger: transaction calldata holds another root than the receipt",
        )


def test_reorged_transaction_is_no_longer_confirmed(home: Path, anvil: Anvil) -> None:
    ledger = ledger_for(home, anvil)
    snapshot = anvil.call("evm_snapshot")
    receipt = ledger.publish(ROOT_A)
    assert ledger.lookup(receipt).confirmed
    anvil.call("evm_revert", snapshot)  # the block with the anchor is gone
    anvil.mine(3)
    result = ledger.lookup(receipt)
    assert not result.confirmed and result.problem == "transaction not found on the chain"


def test_lookup_needs_no_key(home: Path, anvil: Anvil) -> None:
    receipt = ledger_for(home, anvil).publish(ROOT_A)
    clinician = EthereumLedger(eth_ctx(home / "clinician", anvil.url, key=None))
    assert clinician.lookup(receipt).confirmed


def test_wrong_chain_id_setting_is_refused(home: Path, anvil: Anvil) -> None:
    with pytest.raises(UsageError, match="serves chain 31337, settings say 5"):
        EthereumLedger(eth_ctx(home, anvil.url, chain_id=5)).publish(ROOT_A)


def test_key_from_a_private_file(home: Path, anvil: Anvil, tmp_path: Path) -> None:
    key_file = tmp_path / "eth.key"
    key_file.write_text(DEV_KEY + "\n")
    key_file.chmod(0o600)
    ledger = EthereumLedger(eth_ctx(home, anvil.url, key=None, key_file=str(key_file)))
    assert ledger.publish(ROOT_A).details["sender"] == DEV_ADDRESS
    key_file.chmod(0o644)
    with pytest.raises(KeystoreError, match="readable by others"):
        ledger.publish(ROOT_B)


def test_missing_or_bad_key(home: Path, anvil: Anvil) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(KeystoreError, match="no Ethereum sending key"):
            EthereumLedger(eth_ctx(home, anvil.url, key=None)).publish(ROOT_A)
    finally:
        keyring.set_keyring(previous)
    with pytest.raises(KeystoreError, match="not 32 bytes of hex") as caught:
        EthereumLedger(eth_ctx(home, anvil.url, key="0x1234")).publish(ROOT_A)
    assert "1234" not in caught.value.message


def test_settings_are_validated(home: Path) -> None:
    with pytest.raises(UsageError, match="rpc_url"):
        EthereumLedger(LedgerContext(home=home, settings={}))
    with pytest.raises(UsageError, match="confirmations"):
        EthereumLedger(
            LedgerContext(home=home, settings={"rpc_url": "http://x", "confirmations": 0})
        )
    with pytest.raises(UsageError, match="chain_id"):
        EthereumLedger(LedgerContext(home=home, settings={"rpc_url": "http://x"})).publish(ROOT_A)


def test_rpc_url_secrets_stay_out_of_messages(home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v3/SECRET-API-KEY"
    ledger = EthereumLedger(eth_ctx(home, url, timeout=2))
    with pytest.raises(LedgerUnavailableError) as caught:
        ledger.publish(ROOT_A)
    assert "SECRET" not in caught.value.message
    assert DEV_KEY[2:] not in caught.value.message
