"""The relay's ASGI app: the SMART Health Links side (manifest, direct file, locations).

Follows the SMART Health Cards and Links IG (STU1), "SMART Health Links":
- ``POST {base}m/{id}`` with ``{"recipient", "passcode"?, "embeddedLengthMax"?}`` answers
  ``{"files": [{"contentType", "embedded" | "location", "lastUpdated"}], "status"}``;
- ``GET {base}m/{id}?recipient=…`` answers a ``U`` link's one encrypted file (application/jose);
- ``GET {base}f/{token}`` serves a ``location``: it lives at most one hour, once if the link
  says so, and streams the ciphertext.
An unknown, expired, revoked or used-up link gets one and the same 404. A wrong passcode gets
401 with ``remainingAttempts``; the lifetime budget is spent before the Argon2id check runs.
The management side (``manage.py``) is mounted beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .. import keys
from . import config as cfg
from . import manage, protocol
from .config import RelayConfig
from .grantrelay import GrantRoutes
from .guards import HashPool, RateLimiter
from .store import Link, LinkStore, SqlStore, StoredFile
from .web import (
    LINK_ID,
    NO_STORE,
    TOKEN,
    BodyTooLarge,
    RateLimit,
    check_text,
    error,
    json_response,
    not_found,
    parse_object,
    read_body,
    run,
    too_many,
)

JOSE = "application/jose"


@dataclass(frozen=True)
class ManifestRequest:
    """A checked manifest request body."""

    recipient: str
    passcode: str | None
    embedded_max: int


def check_recipient(value: object) -> str:
    """The ``recipient`` a request names: required, short, plain text (ValueError otherwise)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("recipient is required")
    return check_text(value, "recipient", cfg.MAX_RECIPIENT_CHARS)


def parse_manifest_request(body: bytes) -> ManifestRequest:
    """Check a manifest request body; ValueError with a safe message when it is wrong."""
    request = parse_object(body, "the manifest request")
    recipient = check_recipient(request.get("recipient"))
    passcode = request.get("passcode")
    if passcode is not None:
        if not isinstance(passcode, str):
            raise ValueError("passcode must be a string")
        check_text(passcode, "passcode", cfg.MAX_PASSCODE_CHARS)
    embedded_max = request.get("embeddedLengthMax", cfg.DEFAULT_EMBEDDED_MAX)
    if isinstance(embedded_max, bool) or not isinstance(embedded_max, int) or embedded_max < 0:
        raise ValueError("embeddedLengthMax must be a non-negative integer")
    return ManifestRequest(recipient, passcode, embedded_max)


def _iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


class ShlRoutes:
    """The SHL endpoints over one store and one configuration."""

    def __init__(self, store: LinkStore, config: RelayConfig, hashes: HashPool) -> None:
        self.store = store
        self.config = config
        self.hashes = hashes

    def now(self) -> int:
        """The relay's clock, in whole seconds."""
        return int(self.config.clock())

    def token(self) -> str:
        """A fresh 256-bit URL-safe token."""
        return keys.b64url(self.config.random_bytes(32))

    async def _live_link(self, link_id: str, now: int) -> Link | None:
        if not LINK_ID.fullmatch(link_id):
            return None
        link = await run(self.store.get_link, link_id)
        return link if link is not None and link.usable(now) else None

    async def manifest(self, request: Request) -> Response:
        """``POST`` a manifest URL."""
        try:
            wanted = parse_manifest_request(
                await read_body(request, cfg.MAX_MANIFEST_REQUEST_BYTES)
            )
        except BodyTooLarge:
            return error(413, "request body too large")
        except ValueError as exc:
            return error(400, str(exc))
        now = self.now()
        link = await self._live_link(request.path_params["link_id"], now)
        if link is None or "U" in link.flag:
            return not_found()
        if link.passcode_hash is not None:
            refused = await self._check_passcode(link, wanted, now)
            if refused is not None:
                return refused
        if not await run(self.store.take_use, link.id, now):
            return not_found()
        files = [
            await self._describe(link, item, wanted.embedded_max, now)
            for item in await run(self.store.files, link.id)
        ]
        await run(self.store.log_access, link.id, now, wanted.recipient, "ok")
        status = "can-change" if "L" in link.flag else "finalized"
        return json_response(200, {"files": files, "status": status})

    async def _check_passcode(
        self, link: Link, wanted: ManifestRequest, now: int
    ) -> Response | None:
        """None when the passcode is right; else the 401, 404 or 429 to answer."""
        assert link.passcode_hash is not None
        if wanted.passcode is None:
            return json_response(401, {"remainingAttempts": link.attempts_left or 0})
        if not self.hashes.try_enter():
            return too_many(1)
        try:
            left = await run(self.store.take_attempt, link.id)
            if left is None:
                return not_found()
            matches = await self.hashes.verify(link.passcode_hash, wanted.passcode)
        finally:
            self.hashes.leave()
        if not matches:
            await run(self.store.log_access, link.id, now, wanted.recipient, "wrong-passcode")
            return json_response(401, {"remainingAttempts": left})
        await run(self.store.refund_attempt, link.id)
        return None

    async def _describe(
        self, link: Link, item: StoredFile, embedded_max: int, now: int
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"contentType": item.content_type}
        if item.size <= embedded_max:
            chunks = await run(lambda: b"".join(self.store.chunks(item.id)))
            entry["embedded"] = chunks.decode("ascii", "replace")
        else:
            token = self.token()
            expires = now + cfg.LOCATION_SECONDS
            await run(
                self.store.add_location,
                token,
                item.id,
                link.id,
                expires,
                link.single_use_locations,
            )
            entry["location"] = f"{self.config.public_url}{protocol.FILE_PREFIX}{token}"
        entry["lastUpdated"] = _iso(item.updated)
        return entry

    def _stream(self, item: StoredFile) -> Response:
        def body() -> Iterator[bytes]:
            yield from self.store.chunks(item.id)

        return StreamingResponse(
            body(), media_type=JOSE, headers={**NO_STORE, "Content-Length": str(item.size)}
        )

    async def direct_file(self, request: Request) -> Response:
        """``GET`` a ``U`` link's URL with ``?recipient=``: its one encrypted file."""
        if request.method != "GET":
            return not_found()
        try:
            recipient = check_recipient(request.query_params.get("recipient"))
        except ValueError as exc:
            return error(400, str(exc))
        now = self.now()
        link = await self._live_link(request.path_params["link_id"], now)
        if link is None or "U" not in link.flag:
            return not_found()
        files = await run(self.store.files, link.id)
        if len(files) != 1 or not await run(self.store.take_use, link.id, now):
            return not_found()
        await run(self.store.log_access, link.id, now, recipient, "ok")
        return self._stream(files[0])

    async def location(self, request: Request) -> Response:
        """``GET`` a ``location`` URL a manifest handed out."""
        token = request.path_params["token"]
        if request.method != "GET" or not TOKEN.fullmatch(token):  # a HEAD must not use it up
            return not_found()
        now = self.now()
        found = await run(self.store.take_location, token, now)
        if found is None:
            return not_found()
        file_id, link_id = found
        link = await run(self.store.get_link, link_id)
        if link is None or link.revoked or (link.exp is not None and now >= link.exp):
            return not_found()
        for item in await run(self.store.files, link_id):
            if item.id == file_id:
                return self._stream(item)
        return not_found()


async def _uniform_404(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code not in (404, 405):
        return error(exc.status_code, "request refused")
    return not_found()


def create_app(store: LinkStore, config: RelayConfig) -> Starlette:
    """The relay as an ASGI app over ``store`` (rate limits and hash pool included)."""
    hashes = HashPool(config.limits.hash_workers)
    shl = ShlRoutes(store, config, hashes)
    api = manage.ManagementRoutes(store, config, hashes)
    m, f = protocol.MANIFEST_PREFIX, protocol.FILE_PREFIX
    routes: list[BaseRoute] = [
        Route(f"/{m}{{link_id}}", shl.manifest, methods=["POST"]),
        Route(f"/{m}{{link_id}}", shl.direct_file, methods=["GET"]),
        Route(f"/{f}{{token}}", shl.location, methods=["GET"]),
        *api.routes(),
    ]
    if isinstance(store, SqlStore):
        routes += GrantRoutes(store, config).routes()
    app = Starlette(routes=routes, exception_handlers={HTTPException: _uniform_404})
    limiter = RateLimiter(config.limits.requests_per_second, config.limits.burst, config.clock)
    app.add_middleware(RateLimit, limiter=limiter)
    return app
