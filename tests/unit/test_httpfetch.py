"""The guarded fetcher and the URL validator, against real servers on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from healthwallet.errors import BadInputError, NetworkError
from healthwallet.httpfetch import Fetcher, address_class
from healthwallet.urls import parse_url

LOCAL = Fetcher(allow_local=True, deadline=5)


@contextmanager
def raw_server(answer: Callable[[socket.socket, bytes], None]) -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1 that reads one request per connection and calls ``answer``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    requests: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    request = conn.recv(65536)
                    requests.append(request)
                    answer(conn, request)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], requests
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def reply(body: bytes, status: str = "200 OK", **headers: str) -> Callable[[socket.socket, bytes], None]:
    def answer(conn: socket.socket, request: bytes) -> None:
        head = f"HTTP/1.1 {status}\r\nConnection: close\r\n"
        head += "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
        conn.sendall(head.encode() + b"\r\n" + body)

    return answer


def get(fetcher: Fetcher, url: str, max_bytes: int = 1 << 20) -> bytes:
    return fetcher.get(url, "test document", max_bytes=max_bytes, accept="application/json")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.0.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_classes_refused_by_default(address: str, reason: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == reason


def test_loopback_is_refused_unless_allowed_even_through_a_dns_name() -> None:
    with raw_server(reply(b"{}", Content_Length="2")) as (port, requests):
        for url in (f"https://127.0.0.1:{port}/l.json", f"https://localhost:{port}/l.json",
                    f"https://[::ffff:127.0.0.1]:{port}/l.json"):
            with pytest.raises(BadInputError, match="loopback") as refused:
                get(Fetcher(), url)
            assert "allow-local-urls" in refused.value.hint
        with pytest.raises(BadInputError, match="scheme must be https"):
            get(Fetcher(), f"http://localhost:{port}/l.json")
        assert requests == []  # refused before any connection
        assert get(LOCAL, f"http://localhost:{port}/l.json") == b"{}"
        # The request names the host as written (Host), while the connection went to the
        # address checked once.
        assert f"Host: localhost:{port}".encode() in requests[0]


def test_redirect_to_loopback_is_not_followed() -> None:
    with raw_server(reply(b"secret", Content_Length="6")) as (inner, inner_requests):
        target = f"http://127.0.0.1:{inner}/admin"
        with raw_server(reply(b"", "302 Found", Location=target, Content_Length="0")) as (
            outer,
            _,
        ):
            with pytest.raises(NetworkError, match="HTTP 302, a redirect"):
                get(LOCAL, f"http://127.0.0.1:{outer}/list.json")
        assert inner_requests == []


def dribble(head: bytes, tail: bytes) -> Callable[[socket.socket, bytes], None]:
    def answer(conn: socket.socket, request: bytes) -> None:
        conn.sendall(head)
        for byte in tail:
            conn.sendall(bytes([byte]))
            time.sleep(0.1)

    return answer


@pytest.mark.parametrize("where", ["body", "headers"])
def test_dribbling_server_cannot_hold_the_fetch_past_its_deadline(where: str) -> None:
    status = b"HTTP/1.1 200 OK\r\n"
    if where == "body":
        answer = dribble(status + b"Content-Length: 500\r\n\r\n", b"x" * 500)
    else:
        answer = dribble(status, b"X-Slow: " + b"y" * 500 + b"\r\n\r\n")
    with raw_server(answer) as (port, _):
        start = time.monotonic()
        with pytest.raises(NetworkError, match="not fetched within 1 s"):
            get(Fetcher(allow_local=True, deadline=1), f"http://127.0.0.1:{port}/list.json")
        assert time.monotonic() - start < 2.0


def test_oversized_body_is_cut_off_with_or_without_a_length() -> None:
    body = b"[" + b"0," * 40_000 + b"0]"
    with raw_server(reply(body, Content_Length=str(len(body)))) as (port, _):
        with pytest.raises(BadInputError, match="larger than 64 KiB"):
            get(LOCAL, f"http://127.0.0.1:{port}/big.json", max_bytes=64 << 10)
    with raw_server(reply(body)) as (port, _):  # no length: read until close, capped
        with pytest.raises(BadInputError, match="larger than 64 KiB"):
            get(LOCAL, f"http://127.0.0.1:{port}/big.json", max_bytes=64 << 10)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "https://[::1/x",
        "https://xn--zz.example/",
        "https://" + "a" * 300 + ".example/",
        "https://a.example:port/",
        "https://a.example:99999/",
        "https://a.example:/",
        "https://a.example/%00",
        "https://a.example/" + "x" * 3000,
        "https://user:pw@a.example/",
        "https://a.example/\x1b[2J",
        "file:///dev/stdin",
        "ftp://a.example/",
        "",
    ],
)
def test_crafted_urls_are_bad_input_never_a_crash(url: str) -> None:
    with pytest.raises(BadInputError) as refused:
        get(Fetcher(), url)
    assert refused.value.exit_code == 2
    assert "\x1b" not in refused.value.message


def test_url_validator_keeps_what_is_well_formed() -> None:
    url = parse_url("https://Bücher.example:8443/a/b.json?x=1", "u")
    assert (url.host, url.port, url.target) == ("xn--bcher-kva.example", 8443, "/a/b.json?x=1")
    assert parse_url("https://[2001:db8::1]/", "u").host == "2001:db8::1"


def test_exchange_returns_any_status_with_its_headers_and_body_under_the_same_caps() -> None:
    with raw_server(reply(b'{"remainingAttempts": 2}', "401 Unauthorized",
                          **{"Retry-After": "3"})) as (port, requests):
        answer = LOCAL.exchange("POST", f"http://127.0.0.1:{port}/m/x", "a manifest",
                                max_bytes=1024, body=b'{"recipient":"r"}',
                                headers={"Content-Type": "application/json"})
    assert answer.status == 401 and answer.headers["retry-after"] == "3"
    assert answer.body == b'{"remainingAttempts": 2}'
    assert requests[0].startswith(b"POST /m/x HTTP/1.1")
    with raw_server(reply(b"", "302 Found", Location="http://127.0.0.1:1/")) as (port, _):
        with pytest.raises(NetworkError, match="redirect"):
            LOCAL.exchange("GET", f"http://127.0.0.1:{port}/", "a file", max_bytes=1024)
    with raw_server(reply(b"x" * 4096, "404 Not Found")) as (port, _):
        with pytest.raises(BadInputError, match="larger than"):
            LOCAL.exchange("GET", f"http://127.0.0.1:{port}/", "a file", max_bytes=1024)
    with pytest.raises(BadInputError, match="loopback"):
        Fetcher().exchange("DELETE", "https://127.0.0.1/api", "the relay", max_bytes=1024)
