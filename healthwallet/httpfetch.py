"""The one guarded fetcher for URLs named by others (status lists, did:web documents).

A URL inside a grant, a share, a status list or a DID document was written by someone else. By
default a fetch (see ``Fetcher``):

- goes to https only, and follows no redirect (a 3xx answer is a failure);
- resolves the name once, refuses the fetch unless an address is public (not loopback, private,
  link-local, multicast, unspecified or reserved, also when written inside an IPv6 address),
  and connects to that very address while TLS (SNI and the certificate check) and ``Host`` keep
  the name, so DNS rebinding cannot swap in another address afterwards;
- ends at one total deadline, name resolution and TLS handshake included: every read is given
  only the time that is left, so a server dribbling one byte a second cannot hold it longer;
- reads at most ``max_bytes`` of body.

``Fetcher(allow_local=True)`` (the ``allow-local-urls`` setting) also allows loopback
addresses, over http or https: for tests and for a list served on this machine. A ``file:``
URL is never fetched here; a local file is read only from a path the user typed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from .errors import BadInputError, NetworkError
from .termsafe import escape
from .urls import Url, parse_url

DEFAULT_DEADLINE: Final = 10.0
LOCAL_URLS_SETTING: Final = "allow-local-urls"
_LOCAL_HINT: Final = (
    f"only public https addresses are fetched; for a list on this machine pass its path, "
    f"or (tests, self-hosting) run `healthwallet config set {LOCAL_URLS_SETTING} true`"
)
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_T = TypeVar("_T")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def address_class(address: _IP) -> str | None:
    """Why ``address`` may not be fetched from ("loopback", "private" …), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_class(embedded)
    for name in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    return None if address.is_global else "reserved"


class _Deadline:
    """The instant a fetch must be over by."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; TimeoutError once none are."""
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline")
        return remaining


class _DeadlineSocket(socket.socket):
    """A TCP socket whose every read gets only the time left before the deadline."""

    deadline: _Deadline | None = None

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """socket.recv_into, bounded by the deadline."""
        if self.deadline is not None:
            self.settimeout(self.deadline.left())
        return super().recv_into(buffer, nbytes, flags)


class _DeadlineSSLSocket(ssl.SSLSocket):
    """The TLS counterpart of ``_DeadlineSocket``."""

    deadline: _Deadline | None = None

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        """ssl.SSLSocket.recv_into, bounded by the deadline."""
        if self.deadline is not None:
            self.settimeout(self.deadline.left())
        return super().recv_into(buffer, nbytes, flags)


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to checked addresses only, with the URL's name for Host and TLS."""

    def __init__(self, url: Url, addresses: list[str], deadline: _Deadline) -> None:
        super().__init__(url.host, url.port, timeout=deadline.left())
        self.default_port = 443 if url.scheme == "https" else 80  # `Host: name`, no ":443"
        self._addresses = addresses
        self._url = url
        self._deadline = deadline

    def _connect_tcp(self) -> _DeadlineSocket:
        """A TCP connection to the first judged address that answers."""
        failure: OSError = ConnectionError("no address")
        for address in self._addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            raw = _DeadlineSocket(family, socket.SOCK_STREAM)
            try:
                raw.settimeout(self._deadline.left())
                raw.connect((address, self._url.port))
            except TimeoutError:
                raw.close()
                raise
            except OSError as exc:
                raw.close()
                failure = exc
                continue
            return raw
        raise failure

    def connect(self) -> None:
        """Connect to a pinned address; wrap in TLS (checked against the name) for https."""
        raw = self._connect_tcp()
        try:
            raw.deadline = self._deadline
            if self._url.scheme != "https":
                self.sock = raw
                return
            context = ssl.create_default_context()
            context.sslsocket_class = _DeadlineSSLSocket
            raw.settimeout(self._deadline.left())
            tls = context.wrap_socket(raw, server_hostname=self._url.host)
        except BaseException:
            raw.close()
            raise
        tls.deadline = self._deadline  # type: ignore[attr-defined]
        self.sock = tls


def _resolve(url: Url, deadline: _Deadline) -> list[_IP]:
    """The addresses ``url``'s host resolves to, asked once, within the deadline."""
    if url.host_is_ip:
        return [ipaddress.ip_address(url.host)]
    answers: list[Any] = []
    failure: list[BaseException] = []

    def ask() -> None:
        try:
            answers.extend(socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            failure.append(exc)

    # getaddrinfo has no timeout of its own: a resolver that stalls is left behind.
    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(deadline.left())
    if worker.is_alive():
        raise TimeoutError("name resolution")
    if failure or not answers:
        raise NetworkError(f"cannot resolve the host {escape(url.host)}")
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in answers]


@dataclass(frozen=True)
class Fetcher:
    """GET for URLs named by others, under the rules of this module's docstring."""

    allow_local: bool = False
    deadline: float = DEFAULT_DEADLINE

    def _judge(self, url: Url, addresses: list[_IP], what: str) -> list[str]:
        """The addresses that may be connected to, in the resolver's order; BadInputError
        when there is none."""
        allowed: list[str] = []
        reasons: list[str] = []
        for address in addresses:
            reason = address_class(address)
            if reason is None or (reason == "loopback" and self.allow_local):
                if url.scheme == "http" and reason != "loopback":
                    reasons.append("plain http")
                elif str(address) not in allowed:
                    allowed.append(str(address))
            else:
                reasons.append(f"a {reason} address")
        if not allowed:
            raise BadInputError(
                f"{what} {escape(url.text)} is not fetched: it leads to {reasons[0]}", _LOCAL_HINT
            )
        return allowed

    def get(self, url_text: str, what: str, *, max_bytes: int, accept: str) -> bytes:
        """The body of a 200 answer to GET ``url_text``, at most ``max_bytes`` long.

        BadInputError (exit 2) for a malformed or refused URL or a body over the cap;
        NetworkError (exit 5) when the host cannot be reached in time or does not answer 200.
        """
        headers = {"Accept": accept}
        return self._send("GET", url_text, what, None, headers, _body_reader(what, max_bytes))

    def exchange(
        self,
        method: str,
        url_text: str,
        what: str,
        *,
        max_bytes: int,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Any answer to ``method url_text`` (status, headers, body of at most ``max_bytes``),
        under the same rules as ``get``; a redirect is still a NetworkError, never followed."""

        def read(response: http.client.HTTPResponse, shown: str) -> Answer:
            if 300 <= response.status < 400:
                raise NetworkError(
                    f"{what} {shown} answered HTTP {response.status}, a redirect (not followed)",
                    "give the final https address",
                )
            content = _read_capped(response, what, shown, max_bytes)
            names = {name.lower(): value for name, value in response.getheaders()}
            return Answer(response.status, names, content)

        return self._send(method, url_text, what, body, dict(headers or {}), read)

    def _send(
        self,
        method: str,
        url_text: str,
        what: str,
        body: bytes | None,
        headers: dict[str, str],
        read: Callable[[http.client.HTTPResponse, str], _T],
    ) -> _T:
        schemes = ("https", "http") if self.allow_local else ("https",)
        url = parse_url(url_text, what, schemes)
        shown = escape(url.text)
        deadline = _Deadline(self.deadline)
        headers.setdefault("Accept-Encoding", "identity")
        try:
            addresses = self._judge(url, _resolve(url, deadline), what)
            connection = _PinnedConnection(url, addresses, deadline)
            try:
                connection.request(method, url.target, body=body, headers=headers)
                return read(connection.getresponse(), shown)
            finally:
                connection.close()
        except TimeoutError:
            raise NetworkError(
                f"{what} {shown} was not fetched within {self.deadline:g} s"
            ) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise NetworkError(f"cannot fetch {what} {shown} ({type(exc).__name__})") from None


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read by ``Fetcher.exchange``: status, lower-case headers, capped body."""

    status: int
    headers: dict[str, str]
    body: bytes


def _limit_text(max_bytes: int) -> str:
    return f"{max_bytes // (1 << 20)} MiB" if max_bytes >= 1 << 20 else f"{max_bytes >> 10} KiB"


def _read_capped(
    response: http.client.HTTPResponse, what: str, shown: str, max_bytes: int
) -> bytes:
    declared = response.getheader("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BadInputError(f"{what} {shown} is larger than {_limit_text(max_bytes)}")
    body = bytearray()
    while chunk := response.read(min(1 << 16, max_bytes + 1 - len(body))):
        body += chunk
        if len(body) > max_bytes:
            raise BadInputError(f"{what} {shown} is larger than {_limit_text(max_bytes)}")
    return bytes(body)


def _body_reader(what: str, max_bytes: int) -> Callable[[http.client.HTTPResponse, str], bytes]:
    return lambda response, shown: _read_body(response, what, shown, max_bytes)


def _read_body(response: http.client.HTTPResponse, what: str, shown: str, max_bytes: int) -> bytes:
    if 300 <= response.status < 400:
        raise NetworkError(
            f"{what} {shown} answered HTTP {response.status}, a redirect (not followed)",
            "ask for the list's final https address",
        )
    if response.status != 200:
        raise NetworkError(f"{what} {shown} answered HTTP {response.status}")
    return _read_capped(response, what, shown, max_bytes)


def fetch_document(
    url: str,
    what: str,
    *,
    fetcher: Fetcher | None,
    max_bytes: int,
    accept: str,
) -> bytes:
    """``fetcher.get`` (the strict default ``Fetcher()`` when None)."""
    return (fetcher or Fetcher()).get(url, what, max_bytes=max_bytes, accept=accept)


__all__ = [
    "DEFAULT_DEADLINE",
    "LOCAL_URLS_SETTING",
    "Answer",
    "Fetcher",
    "address_class",
    "fetch_document",
]
