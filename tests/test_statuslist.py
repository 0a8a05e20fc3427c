"""healthwallet.statuslist: StatusList2021 bitstrings, list credentials, fetching, checking."""

from __future__ import annotations

import base64
import copy
import gzip
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthwallet import keys
from healthwallet.errors import (
    BadInputError,
    NetworkError,
    NotFoundError,
    UsageError,
    VerificationError,
)
from healthwallet.httpfetch import Fetcher
from healthwallet.statuslist import (
    MIN_SIZE,
    StatusList,
    check_status,
    load_status_list_credential,
    status_entry,
    status_list_credential,
)

PATIENT = keys.Identity(bytes(range(32)))
MALLORY = keys.Identity(bytes(range(2, 34)))
NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
LIST_URL = "https://status.example.org/healthwallet/1.json"

# The example encodedList of the StatusList2021 report (an empty 16 KiB list).
SPEC_EXAMPLE = "H4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"


def revoked_list(*indices: int) -> StatusList:
    bits = StatusList()
    for index in indices:
        bits.set(index)
    return bits


@pytest.fixture(scope="module")
def list_vc() -> dict[str, Any]:
    """Patient's list at LIST_URL with entries 3 and 131071 revoked."""
    return status_list_credential(LIST_URL, revoked_list(3, MIN_SIZE - 1), PATIENT, NOW)


# -- the bitstring -------------------------------------------------------------------------------


def test_default_size_is_16_kib() -> None:
    bits = StatusList()
    assert bits.size == len(bits) == 131072
    assert not any(bits.is_set(i) for i in (0, 1, 65536, 131071))


def test_bit_order_is_left_most_first() -> None:
    # StatusList2021 §5.2: index 0 is the left-most bit of the first byte.
    bits = revoked_list(0, 9)
    raw = gzip.decompress(base64.urlsafe_b64decode(bits.encode() + "=="))
    assert raw[:2] == bytes([0b1000_0000, 0b0100_0000])
    assert len(raw) == 16384


def test_set_and_clear() -> None:
    bits = revoked_list(5)
    assert bits.is_set(5) and not bits.is_set(4) and not bits.is_set(6)
    bits.set(5, revoked=False)
    assert not bits.is_set(5)
    assert bits == StatusList()


@pytest.mark.parametrize("index", [-1, MIN_SIZE, True, 1.0])
def test_index_out_of_range(index: Any) -> None:
    with pytest.raises(UsageError):
        StatusList().set(index)
    with pytest.raises(UsageError):
        StatusList().is_set(index)


@pytest.mark.parametrize("size", [0, 8, MIN_SIZE - 8, MIN_SIZE + 1])
def test_size_must_be_16_kib_or_more_in_bytes(size: int) -> None:
    with pytest.raises(UsageError):
        StatusList(size)


def test_larger_lists_work() -> None:
    bits = StatusList(2 * MIN_SIZE)
    bits.set(2 * MIN_SIZE - 1)
    again = StatusList.decode(bits.encode())
    assert again.size == 2 * MIN_SIZE and again.is_set(2 * MIN_SIZE - 1)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=MIN_SIZE - 1), max_size=50))
def test_round_trip(indices: set[int]) -> None:
    bits = revoked_list(*indices)
    encoded = bits.encode()
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    decoded = StatusList.decode(encoded)
    assert decoded == bits
    assert {i for i in indices if decoded.is_set(i)} == indices
    assert decoded.count() == len(indices)


def test_encoding_is_deterministic() -> None:
    assert revoked_list(7).encode() == revoked_list(7).encode()


def test_decodes_the_spec_example() -> None:
    bits = StatusList.decode(SPEC_EXAMPLE)
    assert bits.size == 131072 and bits.count() == 0


def test_decode_is_liberal_in_base64_form() -> None:
    bits = revoked_list(1, 2, 3)
    compressed = gzip.compress(bytes(bits._bits))
    for text in (
        base64.b64encode(compressed).decode(),  # standard alphabet, padded
        "u" + bits.encode(),  # Bitstring Status List's multibase prefix
    ):
        assert StatusList.decode(text) == bits


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("", "not an encoded bitstring"),
        ("!!!", "not base64url"),
        (base64.urlsafe_b64encode(b"plain bytes").decode(), "not GZIP"),
        (base64.urlsafe_b64encode(gzip.compress(bytes(1024), mtime=0)).decode(), "shorter"),
        (base64.urlsafe_b64encode(gzip.compress(bytes(16384), mtime=0)[:-8]).decode(), "truncated"),
        (base64.urlsafe_b64encode(gzip.compress(bytes(16384), mtime=0) + b"xx").decode(), "trailing"),
    ],
)
def test_decode_rejects_junk(encoded: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        StatusList.decode(encoded)


def test_decode_stops_a_gzip_bomb() -> None:
    bomb = gzip.compress(bytes(17 * 1024 * 1024), compresslevel=9)  # ~17 KiB on the wire
    with pytest.raises(BadInputError, match="16 MiB"):
        StatusList.decode(base64.urlsafe_b64encode(bomb).decode())


# -- entries and list credentials ----------------------------------------------------------------


def test_status_entry_shape() -> None:
    assert status_entry(LIST_URL, 94567) == {
        "id": LIST_URL + "#94567",
        "type": "StatusList2021Entry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": LIST_URL,
    }
    assert status_entry("file:///srv/status/1.json", 0, "suspension")["statusPurpose"] == (
        "suspension"
    )


@pytest.mark.parametrize(
    ("url", "index", "purpose"),
    [
        ("status/1.json", 1, "revocation"),  # relative: would drop out of the signed graph
        ("https://x.example/1.json#frag", 1, "revocation"),
        ("ftp://x.example/1.json", 1, "revocation"),
        ("https:///1.json", 1, "revocation"),
        (LIST_URL, -1, "revocation"),
        (LIST_URL, True, "revocation"),
        (LIST_URL, 1, "expiry"),
    ],
)
def test_status_entry_refuses(url: str, index: Any, purpose: str) -> None:
    with pytest.raises(UsageError):
        status_entry(url, index, purpose)


def test_status_list_credential_shape(list_vc: dict[str, Any]) -> None:
    assert list_vc["id"] == LIST_URL
    assert list_vc["type"] == ["VerifiableCredential", "StatusList2021Credential"]
    assert list_vc["issuer"] == PATIENT.did
    assert list_vc["issuanceDate"] == "2024-03-01T09:00:00Z"
    assert list_vc["@context"] == [
        "https://www.w3.org/2018/credentials/v1",
        "https://w3id.org/vc/status-list/2021/v1",
    ]
    subject = list_vc["credentialSubject"]
    assert subject["type"] == "StatusList2021"
    assert subject["statusPurpose"] == "revocation"
    assert StatusList.decode(subject["encodedList"]) == revoked_list(3, MIN_SIZE - 1)
    assert list_vc["proof"]["created"] == "2024-03-01T09:00:00Z"


# -- checking ------------------------------------------------------------------------------------


def test_check_status(list_vc: dict[str, Any]) -> None:
    assert check_status(status_entry(LIST_URL, 3), list_vc, PATIENT.did) is True
    assert check_status(status_entry(LIST_URL, 4), list_vc, PATIENT.did) is False
    assert check_status(status_entry(LIST_URL, MIN_SIZE - 1), list_vc, PATIENT.did) is True


def test_check_status_with_a_jwt_list() -> None:
    token = status_list_credential(LIST_URL, revoked_list(3), PATIENT, NOW, fmt="jwt")
    assert isinstance(token, str)
    assert check_status(status_entry(LIST_URL, 3), token, PATIENT.did) is True
    assert check_status(status_entry(LIST_URL, 2), token, PATIENT.did) is False


def test_tampered_list_is_rejected(list_vc: dict[str, Any]) -> None:
    # Clearing a revoked bit (un-revoking) without the issuer's key.
    forged = copy.deepcopy(list_vc)
    forged["credentialSubject"]["encodedList"] = StatusList().encode()
    with pytest.raises(VerificationError, match="proof does not verify"):
        check_status(status_entry(LIST_URL, 3), forged, PATIENT.did)


def test_list_of_another_issuer_is_rejected() -> None:
    theirs = status_list_credential(LIST_URL, StatusList(), MALLORY, NOW)
    with pytest.raises(VerificationError, match="someone else"):
        check_status(status_entry(LIST_URL, 3), theirs, PATIENT.did)


def test_list_must_be_the_one_the_entry_names() -> None:
    other = status_list_credential(LIST_URL + "?v=2", StatusList(), PATIENT, NOW)
    with pytest.raises(VerificationError, match="not the list the entry names"):
        check_status(status_entry(LIST_URL, 3), other, PATIENT.did)


def test_purpose_must_match(list_vc: dict[str, Any]) -> None:
    with pytest.raises(VerificationError, match="purpose"):
        check_status(status_entry(LIST_URL, 3, "suspension"), list_vc, PATIENT.did)


def test_index_beyond_the_list(list_vc: dict[str, Any]) -> None:
    entry = status_entry(LIST_URL, MIN_SIZE)
    with pytest.raises(VerificationError, match="beyond"):
        check_status(entry, list_vc, PATIENT.did)


def test_a_grant_is_not_a_status_list() -> None:
    not_a_list = status_list_credential(LIST_URL, StatusList(), PATIENT, NOW)
    not_a_list = copy.deepcopy(not_a_list)
    del not_a_list["proof"]
    not_a_list["type"] = ["VerifiableCredential"]
    with pytest.raises(VerificationError):
        check_status(status_entry(LIST_URL, 3), not_a_list, PATIENT.did)


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "RevocationList2020Status", "statusListIndex": "3"},
        {"type": "StatusList2021Entry", "statusListIndex": "-3", "statusListCredential": LIST_URL},
        {"type": "StatusList2021Entry", "statusListIndex": "３", "statusListCredential": LIST_URL},
        {"type": "StatusList2021Entry", "statusListIndex": "3"},
        "StatusList2021Entry",
    ],
)
def test_malformed_entry_is_bad_input(entry: Any, list_vc: dict[str, Any]) -> None:
    with pytest.raises(BadInputError):
        check_status(entry, list_vc, PATIENT.did)


# -- loading: files ------------------------------------------------------------------------------


def test_load_from_path_and_file_uri(tmp_path: Path, list_vc: dict[str, Any]) -> None:
    path = tmp_path / "status list 1.json"
    path.write_text(json.dumps(list_vc, indent=2) + "\n")
    assert load_status_list_credential(str(path), from_user=True) == list_vc
    assert load_status_list_credential(path.as_uri(), from_user=True) == list_vc


def test_load_a_jwt_list(tmp_path: Path) -> None:
    token = status_list_credential(LIST_URL, revoked_list(3), PATIENT, NOW, fmt="jwt")
    (tmp_path / "raw.jwt").write_text(token + "\n")
    (tmp_path / "quoted.json").write_text(json.dumps(token))
    assert load_status_list_credential(str(tmp_path / "raw.jwt"), from_user=True) == token
    assert load_status_list_credential(str(tmp_path / "quoted.json"), from_user=True) == token


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_status_list_credential(str(tmp_path / "nope.json"), from_user=True)
    with pytest.raises(BadInputError):
        load_status_list_credential(str(tmp_path), from_user=True)


@pytest.mark.parametrize(
    "content", [b"not json", b"[1, 2]", b"\xff\xfe", b'"just a string"', b"a.b"]
)
def test_load_junk_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.json"
    path.write_bytes(content)
    with pytest.raises(BadInputError):
        load_status_list_credential(str(path), from_user=True)


def test_load_caps_file_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_bytes(b" " * (2 * 1024 * 1024 + 1))
    with pytest.raises(BadInputError, match="larger"):
        load_status_list_credential(str(path), from_user=True)


@pytest.mark.parametrize("source", ["ftp://example.org/1.json", "data:,{}", ""])
def test_load_refuses_other_schemes(source: str) -> None:
    with pytest.raises(UsageError):
        load_status_list_credential(source)


# -- loading: a real HTTP server on 127.0.0.1 ----------------------------------------------------


# Loopback servers: the tests opt in, as `config set allow-local-urls true` does.
LOCAL = Fetcher(allow_local=True)


class StatusHost:
    """A real http.server on a free loopback port, serving what ``pages`` holds."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, bytes, dict[str, str], bool]] = {}
        self.requests: list[tuple[str, str]] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append((self.path, self.headers.get("Accept", "")))
                status, body, headers, length = host.pages.get(
                    self.path, (404, b"not found", {}, True)
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if length:  # else HTTP/1.0: the body ends when the connection closes
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(
        self, path: str, body: bytes, status: int = 200, length: bool = True, **headers: str
    ) -> str:
        self.pages[path] = (status, body, headers, length)
        return self.base + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def host() -> Iterator[StatusHost]:
    server = StatusHost()
    yield server
    server.close()


def test_fetch_over_http(host: StatusHost) -> None:
    url = host.base + "/status/1.json"
    bits = revoked_list(3)
    listed = status_list_credential(url, bits, PATIENT, NOW)
    host.serve(
        "/status/1.json", json.dumps(listed).encode(), **{"Content-Type": "application/vc+ld+json"}
    )
    entry = status_entry(url, 3)

    fetched = load_status_list_credential(entry["statusListCredential"], transport=LOCAL)
    assert fetched == listed
    assert check_status(entry, fetched, PATIENT.did) is True
    assert check_status(status_entry(url, 4), fetched, PATIENT.did) is False
    assert "application/vc+ld+json" in host.requests[-1][1]

    # The issuer re-publishes after un-revoking: the next fetch sees it.
    bits.set(3, revoked=False)
    host.serve(
        "/status/1.json", json.dumps(status_list_credential(url, bits, PATIENT, NOW)).encode()
    )
    assert check_status(entry, load_status_list_credential(url, transport=LOCAL), PATIENT.did) is False


def test_fetch_tampered_list_over_http(host: StatusHost) -> None:
    url = host.base + "/status/tampered.json"
    listed = status_list_credential(url, revoked_list(3), PATIENT, NOW)
    listed["credentialSubject"]["encodedList"] = StatusList().encode()
    host.serve("/status/tampered.json", json.dumps(listed).encode())
    with pytest.raises(VerificationError):
        check_status(status_entry(url, 3), load_status_list_credential(url, transport=LOCAL), PATIENT.did)


def test_fetch_follows_no_redirect(host: StatusHost) -> None:
    target = host.serve("/status/moved.json", b'{"moved": true}')
    url = host.serve("/status/old.json", b"", 301, Location=target)
    with pytest.raises(NetworkError, match="HTTP 301, a redirect"):
        load_status_list_credential(url, transport=LOCAL)
    assert host.requests[-1][0] == "/status/old.json"  # the target was never asked


def test_fetch_http_error_is_a_network_error(host: StatusHost) -> None:
    with pytest.raises(NetworkError, match="HTTP 404"):
        load_status_list_credential(host.base + "/status/missing.json", transport=LOCAL)
    url = host.serve("/status/broken.json", b"oops", 500)
    with pytest.raises(NetworkError, match="HTTP 500"):
        load_status_list_credential(url, transport=LOCAL)


def test_fetch_junk_is_bad_input(host: StatusHost) -> None:
    url = host.serve("/status/junk.html", b"<html>status</html>")
    with pytest.raises(BadInputError):
        load_status_list_credential(url, transport=LOCAL)


def test_fetch_caps_size(host: StatusHost) -> None:
    big = b"[" + b"0," * (1024 * 1024 + 1) + b"0]"
    url = host.serve("/status/big.json", big)
    with pytest.raises(BadInputError, match="larger"):
        load_status_list_credential(url, transport=LOCAL)
    # A server that does not say how much it sends is cut off all the same.
    url = host.serve("/status/big-unsized.json", big, length=False)
    with pytest.raises(BadInputError, match="larger"):
        load_status_list_credential(url, transport=LOCAL)


def test_fetch_from_a_closed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NetworkError, match="cannot fetch"):
        load_status_list_credential(f"http://127.0.0.1:{port}/1.json", timeout=2, transport=LOCAL)


def test_fetch_times_out() -> None:
    # A listener that never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/1.json"
        with pytest.raises(NetworkError):
            load_status_list_credential(url, timeout=0.3, transport=LOCAL)
