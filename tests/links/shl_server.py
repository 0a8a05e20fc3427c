"""SHL servers for tests: the real `relay serve`, and an HTTPS server answering as told.

``relay_serve`` runs `healthwallet relay serve` on 127.0.0.1 over TLS (a test CA).
``https_server`` serves any ``Routes`` callable over TLS, so a test can answer with whatever a
hostile link server would.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tlsca import certificates

Reply = tuple[int, dict[str, str], bytes]
Routes = Callable[[str, str, dict[str, str], bytes], Reply]


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
    folder.mkdir(parents=True, exist_ok=True)
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
