"""Anchor roots on any EVM chain: a 0-value transaction to the sender itself.

The calldata is ``ANCHOR_TAG || root`` (36 bytes). The transaction is signed
locally with eth-account and sent over JSON-RPC with httpx. Before sending, the
signed transaction is written to ``<home>/ledger-ethereum.sqlite``; publishing the
same root again re-broadcasts that very transaction instead of signing a new one,
so a crash or a lost answer never anchors a root twice.

Settings (``LedgerContext.settings``): ``rpc_url`` (required), ``chain_id``
(required to publish), ``confirmations`` (default 12), ``key_file``,
``keyring_username`` (default "ethereum"), ``timeout`` seconds (default 10).
The sending key comes from the ``HEALTHWALLET_ETH_KEY`` environment variable, else
``key_file``, else the OS keyring (service "healthwallet"); never from arguments.
"""

from __future__ import annotations

import re
import sqlite3
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import KeystoreError, LedgerUnavailableError, NetworkError, StorageError, UsageError
from ..urls import parse_url
from .base import LedgerContext, LookupResult, Receipt, format_time, open_private_db


def _account() -> Any:
    """eth_account.Account, imported lazily without its side effect on the recursion limit.

    py_ecc (imported by eth-account) raises the process-wide recursion limit to 100,000; we
    put it back so deep input elsewhere fails with RecursionError, not a C stack overflow.
    """
    limit = sys.getrecursionlimit()
    from eth_account import Account

    sys.setrecursionlimit(limit)
    return Account


ANCHOR_TAG = b"HWA1"
INTENTS_FILE = "ledger-ethereum.sqlite"
KEY_ENV = "HEALTHWALLET_ETH_KEY"
KEYRING_SERVICE = "healthwallet"
DEFAULT_KEYRING_USERNAME = "ethereum"
DEFAULT_CONFIRMATIONS = 12
DEFAULT_TIMEOUT = 10.0
# Used only when a node has no eth_maxPriorityFeePerGas.
_FALLBACK_TIP_WEI = 10**9

_TX_HASH = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    chain_id INTEGER NOT NULL,
    sender TEXT NOT NULL,
    root TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    raw_tx BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (chain_id, sender, root)
);
"""


def anchor_calldata(root: bytes) -> bytes:
    """The calldata that anchors ``root``: the 4-byte tag then the 32-byte root."""
    return ANCHOR_TAG + root


@dataclass(frozen=True)
class EthereumSettings:
    """Validated settings of the ethereum backend."""

    rpc_url: str
    chain_id: int | None
    confirmations: int
    key_file: Path | None
    keyring_username: str
    timeout: float

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> EthereumSettings:
        """Read settings; UsageError naming the bad one."""
        rpc_url = settings.get("rpc_url")
        if not isinstance(rpc_url, str) or not rpc_url:
            raise UsageError(
                "the ethereum ledger needs an http(s) rpc_url setting",
                "set ledger.ethereum.rpc_url in the wallet configuration",
            )
        # exit 2, never a crash; the URL is not quoted: its path may hold an API key
        parse_url(rpc_url, "the ethereum rpc-url", ("http", "https"), quote=False)
        chain_id = settings.get("chain_id")
        if chain_id is not None and (not isinstance(chain_id, int) or chain_id <= 0):
            raise UsageError("ethereum chain_id must be a positive integer")
        confirmations = settings.get("confirmations", DEFAULT_CONFIRMATIONS)
        if not isinstance(confirmations, int) or confirmations < 1:
            raise UsageError("ethereum confirmations must be an integer of at least 1")
        key_file = settings.get("key_file")
        timeout = settings.get("timeout", DEFAULT_TIMEOUT)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise UsageError("ethereum timeout must be a positive number of seconds")
        return cls(
            rpc_url=rpc_url,
            chain_id=chain_id,
            confirmations=confirmations,
            key_file=Path(key_file) if key_file else None,
            keyring_username=str(settings.get("keyring_username", DEFAULT_KEYRING_USERNAME)),
            timeout=float(timeout),
        )


class _RpcError(NetworkError):
    """The node answered with a JSON-RPC error."""

    def __init__(self, host: str, method: str, code: object, text: str) -> None:
        super().__init__(f"ethereum node at {host} refused {method}: {text[:200]}")
        self.code = code
        self.text = text


class _Rpc:
    """A JSON-RPC 2.0 client over one httpx.Client; messages name the host only."""

    def __init__(self, url: str, transport: httpx.BaseTransport | None, timeout: float) -> None:
        self._url = url
        # The URL path or query may carry an API key: never show more than the host.
        self.host = urlsplit(url).hostname or "?"
        self._client = httpx.Client(transport=transport, timeout=timeout)
        # A transport handed in through the context belongs to the caller, who closes it.
        self._owns_transport = transport is None
        self._next_id = 0

    def __enter__(self) -> _Rpc:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owns_transport:
            self._client.close()

    def call(self, method: str, *params: Any) -> Any:
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": list(params)}
        try:
            response = self._client.post(self._url, json=request)
        except httpx.TransportError as exc:
            raise LedgerUnavailableError(
                f"ethereum node at {self.host} is unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise LedgerUnavailableError(
                f"ethereum node at {self.host} is unavailable (HTTP {response.status_code})"
            )
        if response.status_code != 200:
            raise NetworkError(f"ethereum node at {self.host} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise NetworkError(f"ethereum node at {self.host} did not answer JSON-RPC") from None
        if not isinstance(body, dict):
            raise NetworkError(f"ethereum node at {self.host} did not answer JSON-RPC")
        if body.get("error") is not None:
            error = body["error"]
            code = error.get("code") if isinstance(error, dict) else None
            text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            raise _RpcError(self.host, method, code, text)
        return body.get("result")

    def quantity(self, method: str, *params: Any) -> int:
        value = self.call(method, *params)
        return _quantity(value, method)


def _quantity(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise NetworkError(f"ethereum node sent a malformed {what}")
    try:
        return int(value, 16)
    except ValueError:
        raise NetworkError(f"ethereum node sent a malformed {what}") from None


@dataclass(frozen=True)
class _Intent:
    chain_id: int
    sender: str
    root: str
    nonce: int
    tx_hash: str
    raw_tx: bytes


class _IntentJournal:
    """Signed transactions written before they are sent (crash recovery)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _connect(self) -> sqlite3.Connection:
        conn = open_private_db(self._path)
        try:
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot open {self._path.name} ({type(exc).__name__})") from exc
        return conn

    def get(self, chain_id: int, sender: str, root: bytes) -> _Intent | None:
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT nonce, tx_hash, raw_tx FROM intents"
                " WHERE chain_id = ? AND sender = ? AND root = ?",
                (chain_id, sender, root.hex()),
            ).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        return _Intent(chain_id, sender, root.hex(), int(row[0]), str(row[1]), bytes(row[2]))

    def put(self, intent: _Intent, created_at: str) -> None:
        conn = self._connect()
        try:
            conn.execute(
                "INSERT OR REPLACE INTO intents"
                " (chain_id, sender, root, nonce, tx_hash, raw_tx, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    intent.chain_id,
                    intent.sender,
                    intent.root,
                    intent.nonce,
                    intent.tx_hash,
                    intent.raw_tx,
                    created_at,
                ),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write {self._path.name} ({type(exc).__name__})") from exc
        finally:
            conn.close()


class EthereumLedger:
    """Roots anchored as calldata of self-transactions on an EVM chain."""

    name = "ethereum"

    def __init__(self, ctx: LedgerContext) -> None:
        self._ctx = ctx
        self.settings = EthereumSettings.from_mapping(ctx.settings)
        self._journal = _IntentJournal(ctx.home / INTENTS_FILE)

    def _rpc(self) -> _Rpc:
        return _Rpc(self.settings.rpc_url, self._ctx.transport, self.settings.timeout)

    def _load_key(self) -> str:
        """The sending key as 64 hex characters; KeystoreError if none is configured."""
        raw = self._ctx.environ.get(KEY_ENV)
        if not raw and self.settings.key_file is not None:
            raw = _read_key_file(self.settings.key_file)
        if not raw:
            raw = _read_keyring(self.settings.keyring_username)
        text = raw.strip()
        text = text[2:] if text.lower().startswith("0x") else text
        if not _HEX_KEY.fullmatch(text):
            raise KeystoreError(
                "the Ethereum sending key is not 32 bytes of hex",
                f"check {KEY_ENV}, the key_file or the keyring entry",
            )
        return text

    def sender_address(self) -> str:
        """The checksummed address of the configured sending key."""
        return str(_account().from_key(bytes.fromhex(self._load_key())).address)

    def publish(self, root: bytes) -> Receipt:
        """Send (or re-send) the anchor transaction for ``root`` and return its receipt."""
        chain_id = self.settings.chain_id
        if chain_id is None:
            raise UsageError("the ethereum ledger needs a chain_id setting to publish")
        account = _account().from_key(bytes.fromhex(self._load_key()))
        sender = str(account.address)
        with self._rpc() as rpc:
            node_chain = rpc.quantity("eth_chainId")
            if node_chain != chain_id:
                raise UsageError(
                    f"the node at {rpc.host} serves chain {node_chain}, settings say {chain_id}",
                    "fix rpc_url or chain_id in the ledger settings",
                )
            intent = self._journal.get(chain_id, sender, root)
            if intent is not None:
                if _transaction_known(rpc, intent.tx_hash):
                    return _receipt(intent)
                mined_nonce = rpc.quantity("eth_getTransactionCount", sender, "latest")
                if mined_nonce <= intent.nonce:
                    _send(rpc, intent)
                    return _receipt(intent)
                # Another transaction used our nonce and ours is unknown: it can never be
                # mined, so a fresh one cannot anchor the root twice.
            intent = _sign(rpc, account, sender, chain_id, root)
            # Write the signed transaction down before it leaves: a crash from here on
            # re-broadcasts this very transaction instead of signing a second one.
            self._journal.put(intent, format_time(self._ctx.now()))
            _send(rpc, intent)
        return _receipt(intent)

    def lookup(self, receipt: Receipt) -> LookupResult:
        """Check the anchor transaction: status, calldata, block on chain, depth, block time."""
        if receipt.ledger != self.name:
            return LookupResult(None, None, 0, False, f"receipt is for ledger {receipt.ledger!r}")
        parsed = _parse_details(receipt.details)
        if parsed is None:
            return LookupResult(
                None, None, 0, False, "receipt does not name an ethereum transaction"
            )
        chain_id, tx_hash, sender = parsed
        if self.settings.chain_id is not None and self.settings.chain_id != chain_id:
            return LookupResult(
                None,
                None,
                0,
                False,
                f"receipt is for chain {chain_id}, not {self.settings.chain_id}",
            )
        with self._rpc() as rpc:
            node_chain = rpc.quantity("eth_chainId")
            if node_chain != chain_id:
                return LookupResult(
                    None, None, 0, False, f"the node serves chain {node_chain}, not {chain_id}"
                )
            return self._lookup_on(rpc, receipt.root, tx_hash, sender)

    def _lookup_on(self, rpc: _Rpc, root: bytes, tx_hash: str, sender: str) -> LookupResult:
        tx = rpc.call("eth_getTransactionByHash", tx_hash)
        if not isinstance(tx, dict):
            return LookupResult(None, None, 0, False, "transaction not found on the chain")
        problems: list[str] = []
        onchain_root = _root_from_calldata(tx.get("input", tx.get("data")))
        if onchain_root is None:
            problems.append("transaction calldata is not an anchor")
        elif onchain_root != root:
            problems.append("transaction calldata holds another root than the receipt")
        if str(tx.get("from", "")).lower() != sender.lower():
            problems.append("transaction was sent by another address than the receipt names")
        if str(tx.get("to", "")).lower() != sender.lower():
            problems.append("transaction is not a self-transaction")
        if _quantity(tx.get("value", "0x0"), "value") != 0:
            problems.append("transaction moves value")
        tx_receipt = rpc.call("eth_getTransactionReceipt", tx_hash)
        if not isinstance(tx_receipt, dict) or tx_receipt.get("blockNumber") is None:
            return LookupResult(onchain_root, None, 0, False, "; ".join(problems) or None)
        if _quantity(tx_receipt.get("status"), "status") != 1:
            problems.append("transaction failed (status 0)")
        number = _quantity(tx_receipt.get("blockNumber"), "block number")
        block = rpc.call("eth_getBlockByNumber", hex(number), False)
        if not isinstance(block, dict) or block.get("hash") != tx_receipt.get("blockHash"):
            return LookupResult(
                onchain_root, None, 0, False, "transaction's block is no longer on the chain"
            )
        head = rpc.quantity("eth_blockNumber")
        confirmations = max(0, head - number + 1)
        anchored_at = datetime.fromtimestamp(_quantity(block.get("timestamp"), "timestamp"), UTC)
        confirmed = not problems and confirmations >= self.settings.confirmations
        return LookupResult(
            onchain_root, anchored_at, confirmations, confirmed, "; ".join(problems) or None
        )


def _read_key_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise KeystoreError(
                "the Ethereum key file is readable by others",
                f"run: chmod 600 {path}",
            )
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"cannot read the Ethereum key file ({type(exc).__name__})") from exc


def _read_keyring(username: str) -> str:
    hint = f"set {KEY_ENV}, a key_file setting, or store the key in the OS keyring"
    try:
        import keyring

        secret = keyring.get_password(KEYRING_SERVICE, username)
    except Exception as exc:
        raise KeystoreError(
            f"no Ethereum sending key: keyring unavailable ({type(exc).__name__})", hint
        ) from exc
    if not secret:
        raise KeystoreError("no Ethereum sending key configured", hint)
    return str(secret)


def _transaction_known(rpc: _Rpc, tx_hash: str) -> bool:
    return isinstance(rpc.call("eth_getTransactionByHash", tx_hash), dict)


def _sign(rpc: _Rpc, account: Any, sender: str, chain_id: int, root: bytes) -> _Intent:
    calldata = anchor_calldata(root)
    nonce = rpc.quantity("eth_getTransactionCount", sender, "pending")
    gas = rpc.quantity(
        "eth_estimateGas",
        {"from": sender, "to": sender, "value": "0x0", "data": "0x" + calldata.hex()},
    )
    tx: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": nonce,
        "to": sender,
        "value": 0,
        "data": calldata,
        "gas": gas,
    }
    latest = rpc.call("eth_getBlockByNumber", "latest", False)
    base_fee = latest.get("baseFeePerGas") if isinstance(latest, dict) else None
    if base_fee is not None:
        try:
            tip = rpc.quantity("eth_maxPriorityFeePerGas")
        except _RpcError:
            tip = _FALLBACK_TIP_WEI
        # EIP-1559: room for the base fee to double before the transaction stalls.
        tx.update(
            type=2,
            maxPriorityFeePerGas=tip,
            maxFeePerGas=2 * _quantity(base_fee, "base fee") + tip,
        )
    else:
        tx["gasPrice"] = rpc.quantity("eth_gasPrice")
    signed = account.sign_transaction(tx)
    return _Intent(
        chain_id=chain_id,
        sender=sender,
        root=root.hex(),
        nonce=nonce,
        tx_hash="0x" + bytes(signed.hash).hex(),
        raw_tx=bytes(signed.raw_transaction),
    )


def _send(rpc: _Rpc, intent: _Intent) -> None:
    try:
        sent = rpc.call("eth_sendRawTransaction", "0x" + intent.raw_tx.hex())
    except _RpcError as exc:
        text = exc.text.lower()
        if "already known" in text or "known transaction" in text:
            return
        if "nonce too low" in text and _transaction_known(rpc, intent.tx_hash):
            return
        raise
    if isinstance(sent, str) and sent.lower() != intent.tx_hash:
        raise NetworkError(f"ethereum node at {rpc.host} reported another transaction hash")


def _root_from_calldata(value: object) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        calldata = bytes.fromhex(value[2:])
    except ValueError:
        return None
    if len(calldata) != len(ANCHOR_TAG) + 32 or not calldata.startswith(ANCHOR_TAG):
        return None
    return calldata[len(ANCHOR_TAG) :]


def _parse_details(details: Mapping[str, Any]) -> tuple[int, str, str] | None:
    chain_id = details.get("chain_id")
    tx_hash = details.get("tx_hash")
    sender = details.get("sender")
    if not isinstance(chain_id, int) or chain_id <= 0:
        return None
    if not isinstance(tx_hash, str) or not _TX_HASH.fullmatch(tx_hash):
        return None
    if not isinstance(sender, str) or not _ADDRESS.fullmatch(sender):
        return None
    return chain_id, tx_hash, sender


def _receipt(intent: _Intent) -> Receipt:
    return Receipt(
        ledger=EthereumLedger.name,
        root=bytes.fromhex(intent.root),
        details={"chain_id": intent.chain_id, "tx_hash": intent.tx_hash, "sender": intent.sender},
    )


__all__ = ["ANCHOR_TAG", "KEY_ENV", "EthereumLedger", "EthereumSettings", "anchor_calldata"]
