"""The grant relay: DID-bound grant files served only unexpired, unrevoked, to their recipient.

- ``POST {base}api/v1/grants`` (signed by the grant's issuer, the patient): the body is a grant
  file. Its credential's proof must verify; the relay keeps the recipient DID, the
  ``expirationDate`` and the ``credentialStatus`` entry, and answers ``{"id", "url", ...}``.
- ``DELETE {base}api/v1/grants/{id}`` (signed by the patient): drop it at once.
- ``GET {base}g/{id}/challenge``: ``{"nonce", "expires"}``, single use, ``CHALLENGE_SECONDS``.
- ``POST {base}g/{id}`` with ``{"nonce"}``, signed (``protocol`` HW-Sig) by the recipient DID:
  the grant file, if it is unexpired and its bit in the issuer's published status list is clear.
Every refusal is the one 404, except a malformed signature header (400).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import keys, statuslist
from ..errors import HealthWalletError
from ..httpfetch import Fetcher
from . import protocol
from .config import RelayConfig
from .grantstore import GrantStore, RelayedGrant
from .manage import signed_body
from .store import SqlStore
from .web import LINK_ID, error, json_response, not_found, parse_object, run

CHALLENGE_SECONDS = 120
"""How long a grant challenge lives (it is also single use)."""
STATUS_CACHE_SECONDS = 60
"""How long a fetched status list is trusted before it is fetched again."""
MAX_GRANTS_PER_PATIENT = 200
MAX_STATUS_LISTS_CACHED = 1000
GRANT_FILE_TYPE = "application/vnd.healthwallet.grant"


class StatusCache:
    """Revocation checks against published status lists, each list kept a short while.

    A list that cannot be fetched, or that does not verify, counts as revoked (fail closed).
    """

    def __init__(self, fetcher: Fetcher, clock: Callable[[], float]) -> None:
        self.fetcher = fetcher
        self.clock = clock
        self._lists: dict[str, tuple[float, dict[str, Any] | str]] = {}

    def _list(self, url: str) -> dict[str, Any] | str:
        now = self.clock()
        cached = self._lists.get(url)
        if cached is not None and now - cached[0] < STATUS_CACHE_SECONDS:
            return cached[1]
        document = statuslist.load_status_list_credential(url, transport=self.fetcher)
        if len(self._lists) >= MAX_STATUS_LISTS_CACHED:
            self._lists.clear()
        self._lists[url] = (now, document)
        return document

    def clear(self, entry: dict[str, Any], issuer: str) -> bool:
        """Whether the entry's bit is clear in the issuer's list (False on any failure)."""
        try:
            url = entry.get("statusListCredential")
            if not isinstance(url, str):
                return False
            return not statuslist.check_status(entry, self._list(url), issuer)
        except HealthWalletError:
            return False
        except Exception:  # didkit edge cases: fail closed, never crash
            return False


def read_grant(data: bytes) -> tuple[str, str, str, int, dict[str, Any]]:
    """(grant id, issuer, recipient, expiry, status entry) of a grant file whose credential's
    proof verifies; ValueError with a safe message otherwise."""
    from ..grants import GrantClaims, read_grant_header, verify_file_credential

    try:
        header = read_grant_header(io.BytesIO(data))
        proof = verify_file_credential(header.credential, "grant")
        if not proof.ok:
            raise ValueError("the grant's proof does not verify")
        claims = GrantClaims.from_credential(proof.credential)
    except HealthWalletError as exc:
        raise ValueError(f"not a valid grant ({exc.message})") from None
    if not keys.is_did_key(claims.recipient):
        raise ValueError("the relay serves grants to did:key recipients only")
    expires = int(claims.expires.astimezone(UTC).timestamp())
    return claims.id, claims.issuer, claims.recipient, expires, dict(claims.status)


class GrantRoutes:
    """The grant relay's endpoints over one SQL store."""

    def __init__(self, store: SqlStore, config: RelayConfig) -> None:
        self.sql = store
        self.grants = GrantStore(store)
        self.config = config
        self.status = StatusCache(Fetcher(allow_local=config.allow_local_urls), config.clock)

    def routes(self) -> Sequence[BaseRoute]:
        """The Starlette routes of the grant relay."""
        api, g = "/" + protocol.API_GRANTS, "/" + protocol.GRANT_PREFIX
        return [
            Route(api, self.upload, methods=["POST"]),
            Route(api + "/{grant_id}", self.delete, methods=["DELETE"]),
            Route(g + "{grant_id}/challenge", self.challenge, methods=["GET"]),
            Route(g + "{grant_id}", self.fetch, methods=["POST"]),
        ]

    def now(self) -> int:
        """The relay's clock, in whole seconds."""
        return int(self.config.clock())

    async def _signed(self, request: Request, limit: int) -> tuple[str, bytes] | Response:
        """(signer DID, body) of a fresh, correctly signed request; else the answer: 400 for a
        malformed signature header, 401 for a bad or replayed one."""
        try:
            protocol.parse_header(request.headers.get("authorization"))
        except protocol.AuthError as exc:
            return error(400, str(exc))
        return await signed_body(request, self.sql, self.config, limit)

    def _url(self, grant_id: str) -> str:
        return f"{self.config.public_url}{protocol.GRANT_PREFIX}{grant_id}"

    async def upload(self, request: Request) -> Response:
        """``POST api/v1/grants``: keep a grant file its issuer signed the upload of."""
        signed = await self._signed(request, self.config.limits.max_upload_bytes)
        if isinstance(signed, Response):
            return signed
        did, body = signed
        if not self.config.may_create(did):
            return error(403, "this relay does not accept grants from this DID")
        try:
            _, issuer, recipient, expires, entry = await run(read_grant, body)
        except ValueError as exc:
            return error(400, str(exc))
        if issuer != did:
            return error(400, "only the grant's issuer may relay it")
        now = self.now()
        if expires <= now:
            return error(400, "the grant has expired")
        grant = RelayedGrant(
            id=keys.b64url(self.config.random_bytes(32)),
            owner=did,
            recipient=recipient,
            exp=expires,
            status_entry=json.dumps(entry, sort_keys=True),
            created=now,
        )
        if not await run(self.grants.add, grant, body, MAX_GRANTS_PER_PATIENT):
            return error(403, f"this DID already has {MAX_GRANTS_PER_PATIENT} grants here")
        return json_response(
            201,
            {"id": grant.id, "url": self._url(grant.id), "recipient": recipient, "exp": expires},
        )

    async def delete(self, request: Request) -> Response:
        """``DELETE api/v1/grants/{id}``: the patient withdraws a relayed grant."""
        signed = await self._signed(request, 0)
        if isinstance(signed, Response):
            return signed
        grant_id = request.path_params["grant_id"]
        if not LINK_ID.fullmatch(grant_id) or not await run(
            self.grants.delete, grant_id, signed[0]
        ):
            return not_found()
        return json_response(200, {"id": grant_id, "deleted": True})

    async def _servable(self, grant_id: str, now: int) -> RelayedGrant | None:
        if not LINK_ID.fullmatch(grant_id):
            return None
        grant = await run(self.grants.get, grant_id)
        return grant if grant is not None and now < grant.exp else None

    async def challenge(self, request: Request) -> Response:
        """``GET g/{id}/challenge``: a fresh single-use nonce for the recipient to sign."""
        now = self.now()
        grant = await self._servable(request.path_params["grant_id"], now)
        if grant is None:
            return not_found()
        nonce = keys.b64url(self.config.random_bytes(32))
        expires = now + CHALLENGE_SECONDS
        await run(self.grants.add_challenge, nonce, grant.id, expires, now)
        return json_response(200, {"nonce": nonce, "expires": expires})

    async def fetch(self, request: Request) -> Response:
        """``POST g/{id}``: the grant file, to its recipient, while unexpired and unrevoked."""
        signed = await self._signed(request, 1024)
        if isinstance(signed, Response):
            return not_found() if signed.status_code != 400 else signed
        did, body = signed
        try:
            nonce = parse_object(body, "the request").get("nonce")
        except ValueError:
            return not_found()
        now = self.now()
        grant = await self._servable(request.path_params["grant_id"], now)
        if grant is None or not isinstance(nonce, str) or did != grant.recipient:
            return not_found()
        if not await run(self.grants.take_challenge, nonce, grant.id, now):
            return not_found()
        entry = json.loads(grant.status_entry)
        if not await run(self.status.clear, entry, grant.owner):
            return not_found()
        data = await run(self.grants.data, grant.id)
        if data is None:
            return not_found()
        return Response(
            data,
            200,
            media_type=GRANT_FILE_TYPE,
            headers={"Cache-Control": "no-store"},
        )


__all__ = ["CHALLENGE_SECONDS", "GrantRoutes", "StatusCache", "read_grant"]
