"""The relay's management API for patients: create, list, update, revoke a link, read its log.

Every request is signed with the patient's did:key (``protocol.verify_request``); nonces are
kept in the store so a replay fails on every relay sharing it. Only the DID that created a link
may see or change it: to anyone else it does not exist (the same 404 as an unknown link).
Bodies and answers are described in docs/format-link.md, "Relay management API".
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import jsonutil, keys
from . import config as cfg
from . import protocol
from .config import RelayConfig
from .guards import HashPool
from .store import Link, LinkStore, NewFile
from .web import (
    LINK_ID,
    BodyTooLarge,
    check_text,
    error,
    json_response,
    not_found,
    parse_object,
    read_body,
    run,
)

CONTENT_TYPES = frozenset(
    {"application/fhir+json", "application/smart-health-card", "application/smart-api-access"}
)
"""The SHL file types a relay stores."""

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_FLAG = re.compile(r"L?P?U?")
_CREATE_MEMBERS = frozenset(
    {"flag", "exp", "passcode", "passcodeAttempts", "maxUses", "singleUseLocations", "files"}
)


@dataclass(frozen=True)
class NewLink:
    """A checked create request."""

    flag: str
    exp: int | None
    passcode: str | None
    attempts: int
    max_uses: int | None
    single_use_locations: bool
    files: list[NewFile]


MAX_EXP = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_USES = 2**31 - 1
MAX_JWE_HEADER_CHARS = 1024


def _integer(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be an integer of at least {low}")
    if value > high:
        raise ValueError(f"{what} must be at most {high}")
    return value


def check_jwe(text: object) -> bytes:
    """A file's ciphertext: a compact JWE with ``alg: dir`` and ``enc: A256GCM`` (ValueError)."""
    if not isinstance(text, str):
        raise ValueError("a file's jwe must be a string")
    parts = text.split(".")
    if len(parts) != 5 or not all(_B64URL.fullmatch(part) for part in parts):
        raise ValueError("a file's jwe is not a compact JWE")
    if len(parts[0]) > MAX_JWE_HEADER_CHARS:
        raise ValueError(f"a file's jwe header is longer than {MAX_JWE_HEADER_CHARS} characters")
    if parts[1] or not (parts[0] and parts[2] and parts[3] and parts[4]):
        raise ValueError("a file's jwe must use direct encryption (alg dir)")
    try:
        header = jsonutil.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("a file's jwe header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "dir":
        raise ValueError("a file's jwe must use alg dir")
    if header.get("enc") != "A256GCM":
        raise ValueError("a file's jwe must use enc A256GCM")
    return text.encode("ascii")


def parse_files(value: object, limit: int) -> list[NewFile]:
    """The ``files`` member: 1 to ``limit`` entries ``{"contentType", "jwe"}`` (ValueError)."""
    if not isinstance(value, list) or not value:
        raise ValueError("files must be a non-empty list")
    if len(value) > limit:
        raise ValueError(f"at most {limit} files per link")
    files = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"contentType", "jwe"}:
            raise ValueError("each file is an object with contentType and jwe")
        if entry["contentType"] not in CONTENT_TYPES:
            raise ValueError("a file's contentType is not an SHL file type")
        files.append(NewFile(entry["contentType"], check_jwe(entry["jwe"])))
    return files


def parse_create(body: bytes, now: int, limits: cfg.Limits) -> NewLink:
    """Check a create request body; ValueError with a safe message when it is wrong."""
    request = parse_object(body, "the request")
    unknown = sorted(set(request) - _CREATE_MEMBERS)
    if unknown:
        # The message names what is allowed, never what was sent (web.error's rule).
        raise ValueError("unknown member; allowed: " + ", ".join(sorted(_CREATE_MEMBERS)))
    flag = request.get("flag", "")
    if not isinstance(flag, str) or not _FLAG.fullmatch(flag):
        raise ValueError("flag is made of L, P, U in alphabetical order")
    if "P" in flag and "U" in flag:
        raise ValueError("a U link cannot have a passcode")
    exp = request.get("exp")
    if exp is not None and _integer(exp, "exp", 0, MAX_EXP) <= now:
        raise ValueError("exp is not in the future")
    passcode = request.get("passcode")
    if ("P" in flag) != (passcode is not None):
        raise ValueError("a passcode goes with flag P, and only with it")
    if passcode is not None:
        if not isinstance(passcode, str) or not passcode:
            raise ValueError(f"passcode must be 1 to {cfg.MAX_PASSCODE_CHARS} characters")
        check_text(passcode, "passcode", cfg.MAX_PASSCODE_CHARS)
    attempts = _integer(
        request.get("passcodeAttempts", cfg.DEFAULT_PASSCODE_ATTEMPTS),
        "passcodeAttempts",
        1,
        cfg.MAX_PASSCODE_ATTEMPTS,
    )
    max_uses = request.get("maxUses")
    if max_uses is not None:
        max_uses = _integer(max_uses, "maxUses", 1, MAX_USES)
    single = request.get("singleUseLocations", True)
    if not isinstance(single, bool):
        raise ValueError("singleUseLocations must be true or false")
    files = parse_files(request.get("files"), limits.max_files_per_link)
    if "U" in flag and len(files) != 1:
        raise ValueError("a U link has exactly one file")
    return NewLink(flag, exp, passcode, attempts, max_uses, single, files)


def describe(link: Link, public_url: str, file_count: int | None = None) -> dict[str, Any]:
    """A link as the owner sees it in answers."""
    info: dict[str, Any] = {
        "id": link.id,
        "url": f"{public_url}{protocol.MANIFEST_PREFIX}{link.id}",
        "flag": link.flag,
        "exp": link.exp,
        "created": link.created,
        "updated": link.updated,
        "revoked": link.revoked,
        "uses": link.uses,
        "maxUses": link.max_uses,
        "remainingAttempts": link.attempts_left,
    }
    if file_count is not None:
        info["files"] = file_count
    return info


async def signed_body(
    request: Request, store: LinkStore, config: RelayConfig, limit: int | None = None
) -> tuple[str, bytes] | Response:
    """(signer DID, body) of a correctly signed, fresh request (body at most ``limit`` bytes,
    the upload limit by default); else the error answer (413, or 401 with the reason)."""
    try:
        body = await read_body(request, config.limits.max_upload_bytes if limit is None else limit)
    except BodyTooLarge:
        return error(413, "request body too large")
    target = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    if query:
        target += "?" + query
    now = int(config.clock())

    def nonce_seen(did: str, nonce: str, expires: int) -> bool:
        return store.nonce_seen(did, nonce, expires, now)

    try:
        did = await run(
            protocol.verify_request,
            request.headers.get("authorization"),
            request.method,
            target,
            body,
            now,
            nonce_seen,
        )
    except protocol.AuthError as exc:
        return error(401, str(exc), {"WWW-Authenticate": protocol.SCHEME})
    return did, body


class ManagementRoutes:
    """The signed patient-side endpoints over one store."""

    def __init__(self, store: LinkStore, config: RelayConfig, hashes: HashPool) -> None:
        self.store = store
        self.config = config
        self.hashes = hashes

    def routes(self) -> Sequence[BaseRoute]:
        """The Starlette routes of the management API."""
        base = "/" + protocol.API_LINKS
        return [
            Route(base, self.create, methods=["POST"]),
            Route(base, self.list, methods=["GET"]),
            Route(base + "/{link_id}", self.show, methods=["GET"]),
            Route(base + "/{link_id}", self.update, methods=["PUT"]),
            Route(base + "/{link_id}", self.revoke, methods=["DELETE"]),
            Route(base + "/{link_id}/log", self.log, methods=["GET"]),
        ]

    def _file_ids(self, count: int) -> list[str]:
        return [keys.b64url(self.config.random_bytes(16)) for _ in range(count)]

    async def _signed(self, request: Request) -> tuple[str, bytes] | Response:
        """(signer DID, body) of a correctly signed, fresh request; else the error answer."""
        return await signed_body(request, self.store, self.config)

    async def _owned(self, request: Request) -> tuple[Link, bytes] | Response:
        """(link, body) when a signed request names one of the signer's links; else the answer
        (the same 404 as an unknown link when it is someone else's)."""
        signed = await self._signed(request)
        if isinstance(signed, Response):
            return signed
        did, body = signed
        link_id = request.path_params["link_id"]
        link = await run(self.store.get_link, link_id) if LINK_ID.fullmatch(link_id) else None
        if link is None or link.owner != did:
            return not_found()
        return link, body

    async def create(self, request: Request) -> Response:
        """``POST api/v1/links``: store a new link for the signer."""
        signed = await self._signed(request)
        if isinstance(signed, Response):
            return signed
        did, body = signed
        if not self.config.may_create(did):
            return error(403, "this relay does not accept links from this DID")
        now = int(self.config.clock())
        try:
            wanted = parse_create(body, now, self.config.limits)
        except ValueError as exc:
            return error(400, str(exc))
        passcode_hash = None
        if wanted.passcode is not None:
            passcode_hash = await self.hashes.hash(wanted.passcode, *cfg.passcode_cost())
        link = Link(
            id=keys.b64url(self.config.random_bytes(32)),
            owner=did,
            flag=wanted.flag,
            exp=wanted.exp,
            passcode_hash=passcode_hash,
            attempts_left=wanted.attempts if passcode_hash is not None else None,
            max_uses=wanted.max_uses,
            uses=0,
            single_use_locations=wanted.single_use_locations,
            revoked=False,
            created=now,
            updated=now,
        )
        stored = await run(
            self.store.create_link,
            link,
            wanted.files,
            self._file_ids(len(wanted.files)),
            self.config.limits.max_links_per_patient,
        )
        if not stored:
            limit = self.config.limits.max_links_per_patient
            return error(403, f"this DID already has {limit} links here; revoke some first")
        return json_response(201, describe(link, self.config.public_url, len(wanted.files)))

    async def list(self, request: Request) -> Response:
        """``GET api/v1/links``: the signer's links."""
        signed = await self._signed(request)
        if isinstance(signed, Response):
            return signed
        links = await run(self.store.list_links, signed[0])
        return json_response(
            200, {"links": [describe(link, self.config.public_url) for link in links]}
        )

    async def show(self, request: Request) -> Response:
        """``GET api/v1/links/{id}``: one of the signer's links."""
        owned = await self._owned(request)
        if isinstance(owned, Response):
            return owned
        link = owned[0]
        files = await run(self.store.files, link.id)
        return json_response(200, describe(link, self.config.public_url, len(files)))

    async def update(self, request: Request) -> Response:
        """``PUT api/v1/links/{id}``: new files (same key) for a long-term link."""
        owned = await self._owned(request)
        if isinstance(owned, Response):
            return owned
        link, body = owned
        if link.revoked:
            return not_found()
        if "L" not in link.flag:
            return error(409, "only a long-term (L) link can be updated")
        try:
            request_body = parse_object(body, "the request")
            if set(request_body) != {"files"}:
                raise ValueError("the request has exactly one member, files")
            files = parse_files(request_body["files"], self.config.limits.max_files_per_link)
            if "U" in link.flag and len(files) != 1:
                raise ValueError("a U link has exactly one file")
        except ValueError as exc:
            return error(400, str(exc))
        now = int(self.config.clock())
        ids = self._file_ids(len(files))
        if not await run(self.store.replace_files, link.id, link.owner, files, ids, now):
            return not_found()
        updated = await run(self.store.get_link, link.id)
        assert updated is not None
        return json_response(200, describe(updated, self.config.public_url, len(files)))

    async def revoke(self, request: Request) -> Response:
        """``DELETE api/v1/links/{id}``: revoke at once and drop the ciphertext."""
        owned = await self._owned(request)
        if isinstance(owned, Response):
            return owned
        link = owned[0]
        await run(self.store.revoke_link, link.id, link.owner, int(self.config.clock()))
        return json_response(200, {"id": link.id, "revoked": True})

    async def log(self, request: Request) -> Response:
        """``GET api/v1/links/{id}/log``: who resolved the link, when, and how it went."""
        owned = await self._owned(request)
        if isinstance(owned, Response):
            return owned
        link = owned[0]
        entries = await run(self.store.access_log, link.id)
        return json_response(
            200,
            {
                "id": link.id,
                "entries": [
                    {"at": e.at, "recipient": e.recipient, "outcome": e.outcome} for e in entries
                ],
            },
        )
