"""A small SHL server for tests: a real HTTPS server on 127.0.0.1 (test CA), with a test relay.

``MiniRelay`` speaks the patient-side API healthwallet's link client uses (DID-signed requests,
relay/protocol.py) and the SHL side (manifest POST with passcode budget, U-flag GET, location
files). ``HttpsServer`` serves any ``Routes`` callable, so a test can answer with whatever a
hostile server would.
"""

from __future__ import annotations

import http.server
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthwallet.relay import protocol

Reply = tuple[int, dict[str, str], bytes]
Routes = Callable[[str, str, dict[str, str], bytes], Reply]


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem) for localhost and 127.0.0.1 (the did:web tests' helper)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
    from test_didweb_cli import _certificates

    return _certificates(folder)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: Routes

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, content = self.routes(self.command, self.path, headers, body)
        self.send_response(status)
        for name, value in out_headers.items():
            self.send_header(name, value)
        if "Content-Length" not in out_headers:
            self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


@contextmanager
def https_server(routes: Routes, folder: Path) -> Iterator[tuple[str, Path]]:
    """Serve ``routes`` over TLS on 127.0.0.1; yields (base URL with `localhost`, CA file)."""
    ca, cert, key = certificates(folder)
    handler = type("Handler", (_Handler,), {"routes": staticmethod(routes)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://localhost:{server.server_address[1]}/", ca
    finally:
        server.shutdown()
        server.server_close()


def _json(status: int, value: Any, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(value).encode()


@dataclass
class _Link:
    owner: str
    flag: str
    exp: int | None
    passcode: str | None
    files: list[str]
    attempts: int = 3
    revoked: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MiniRelay:
    """The relay's behaviour as docs/format-link.md specifies it, in memory (a stand-in until
    the real `relay serve` is merged; the interop tests run against the real one)."""

    base: str = ""
    links: dict[str, _Link] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    embedded_max: int = 1 << 20

    def _nonce(self, did: str, nonce: str, _expires: int) -> bool:
        if (did, nonce) in self.seen:
            return True
        self.seen.add((did, nonce))
        return False

    def _live(self, link_id: str) -> _Link | None:
        link = self.links.get(link_id)
        if link is None or link.revoked or (link.exp is not None and link.exp < time.time()):
            return None
        return link

    def __call__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query = target.partition("?")
        parts = path.strip("/").split("/")
        if path.startswith("/" + protocol.API_LINKS):
            try:
                did = protocol.verify_request(
                    headers.get("authorization"), method, target, body, int(time.time()),
                    self._nonce,
                )
            except protocol.AuthError:
                return _json(401, {"error": "bad signature"})
            return self._manage(method, parts[3:], did, body)
        if parts[0] == "m" and len(parts) == 2:
            return self._manifest(method, parts[1], query, body)
        if parts[0] == "f" and len(parts) == 2 and parts[1] in self.locations:
            return 200, {"Content-Type": "application/jose"}, self.locations[parts[1]].encode()
        return _json(404, {})

    def _manage(self, method: str, rest: list[str], did: str, body: bytes) -> Reply:
        if method == "POST" and not rest:
            request = json.loads(body)
            link_id = secrets.token_urlsafe(32)
            self.links[link_id] = _Link(
                did, request.get("flag", ""), request.get("exp"), request.get("passcode"),
                [f["jwe"] for f in request["files"]],
            )
            return _json(201, {"id": link_id, "url": f"{self.base}m/{link_id}"})
        if method == "GET" and not rest:
            mine = [{"id": k, "flag": v.flag} for k, v in self.links.items() if v.owner == did]
            return _json(200, {"links": mine})
        link = self.links.get(rest[0]) if rest else None
        if link is None or link.owner != did:
            return _json(404, {})
        if method == "DELETE" and len(rest) == 1:
            link.revoked = True
            return _json(200, {"id": rest[0], "revoked": True})
        if method == "PUT" and len(rest) == 1:
            link.files = [f["jwe"] for f in json.loads(body)["files"]]
            return _json(200, {})
        if method == "GET" and rest[1:] == ["log"]:
            return _json(200, {"id": rest[0], "entries": link.log})
        return _json(404, {})

    def _manifest(self, method: str, link_id: str, query: str, body: bytes) -> Reply:
        link = self._live(link_id)
        if link is None:
            return _json(404, {})
        if method == "GET" and "U" in link.flag:
            recipient = urllib.parse.parse_qs(query).get("recipient", [""])[0]
            link.log.append({"at": int(time.time()), "recipient": recipient, "outcome": "ok"})
            return 200, {"Content-Type": "application/jose"}, link.files[0].encode()
        if method != "POST":
            return _json(404, {})
        request = json.loads(body)
        if link.passcode is not None and request.get("passcode") != link.passcode:
            link.attempts -= 1
            if link.attempts <= 0:
                link.revoked = True
            return _json(401, {"remainingAttempts": max(link.attempts, 0)})
        link.log.append({"at": int(time.time()), "recipient": request.get("recipient"),
                         "outcome": "ok"})
        files = []
        for jwe in link.files:
            if len(jwe) <= request.get("embeddedLengthMax", self.embedded_max):
                files.append({"contentType": "application/fhir+json", "embedded": jwe})
            else:
                token = secrets.token_urlsafe(32)
                self.locations[token] = jwe
                files.append({"contentType": "application/fhir+json",
                              "location": f"{self.base}f/{token}"})
        return _json(200, {"files": files})


@dataclass(frozen=True)
class ServedRelay:
    """`healthwallet relay serve` running on 127.0.0.1 over TLS."""

    base: str
    ca: Path


@contextmanager
def relay_serve(folder: Path, env: dict[str, str], *extra: str) -> Iterator[ServedRelay]:
    """Run the real `healthwallet relay serve` (TLS from a test CA, SQLite in ``folder``)
    until the block ends; stopped with SIGTERM, as an operator would."""
    import signal
    import subprocess
    import sys

    ca, cert, key = certificates(folder)
    server = subprocess.Popen(
        [sys.executable, "-m", "healthwallet", "relay", "serve", "--cert", str(cert),
         "--key", str(key), "--port", "0", "--db", str(folder / "relay.db"),
         "--open-registration", "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, server.stderr.read().decode() if server.stderr else "relay did not start"
        yield ServedRelay(json.loads(line)["url"], ca)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
