"""The relay's HTTP pieces shared by the SHL and management sides: responses, bodies, ids."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import jsonutil
from .guards import RateLimiter

LINK_ID = re.compile(r"[A-Za-z0-9_-]{43}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

_P = ParamSpec("_P")
_T = TypeVar("_T")

_CONTROL = re.compile("[\x00-\x1f\x7f]")
NO_STORE = {"Cache-Control": "no-store"}
NOT_FOUND_BODY = b'{"error":"not found"}'


class BodyTooLarge(Exception):
    """A request body over its limit."""


def json_response(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response that no cache keeps."""
    return Response(
        json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )


def not_found() -> Response:
    """The one 404: unknown, expired, revoked, used up and not-yours all look alike."""
    return Response(NOT_FOUND_BODY, 404, media_type="application/json", headers=NO_STORE)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error response ``{"error": message}``; the message never quotes the request."""
    return json_response(status, {"error": message}, headers)


def too_many(retry_after: int) -> Response:
    """429 with Retry-After (seconds)."""
    return error(429, "too many requests", {"Retry-After": str(retry_after)})


def check_text(value: str, what: str, limit: int) -> str:
    """``value`` when it is at most ``limit`` characters of storable text: UTF-8 encodable (no
    lone surrogates) and without control characters (PostgreSQL refuses NUL); ValueError."""
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text") from None
    return value


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (BodyTooLarge) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BodyTooLarge
        parts.append(part)
    return b"".join(parts)


def parse_object(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object from a request body; ValueError (with a safe message) otherwise."""
    try:
        value = jsonutil.loads(body, what=what)
    except jsonutil.JsonInputError as exc:
        raise ValueError(exc.message) from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


async def run(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run a blocking store call in a worker thread."""
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


class RateLimit:
    """ASGI middleware: 429 + Retry-After once a client address exceeds its rate."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request against its client address, then pass it on or refuse it."""
        if scope["type"] == "http":
            client = scope.get("client")
            wait = self.limiter.retry_after(client[0] if client else "")
            if wait:
                await too_many(wait)(scope, receive, send)
                return
        await self.app(scope, receive, send)
