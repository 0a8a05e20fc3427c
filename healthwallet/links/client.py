"""The patient's side of a relay: create, list, update and revoke links, read their log.

Every request is signed with the patient's DID key (``relay.protocol.sign_request``); the time
is injected. Each answer is hostile: it passes through the guarded fetcher (https only, no
redirect, one deadline, a size cap) and its JSON is checked member by member.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .. import jsonutil, keys
from ..errors import AccessDeniedError, BadInputError, NetworkError, NotFoundError
from ..httpfetch import Answer, Fetcher
from ..relay import protocol
from ..termsafe import escape
from ..urls import parse_url
from . import payload

MAX_ANSWER_BYTES: Final = 4 << 20
Clock = Callable[[], int]


def relay_base(url: str) -> str:
    """The relay's base URL, checked and ending in ``/``."""
    parsed = parse_url(url, "the relay URL (--relay)", ("https",))
    if "?" in url:
        raise BadInputError("the relay URL has a query", "give the relay's base URL")
    return parsed.text if parsed.text.endswith("/") else parsed.text + "/"


@dataclass(frozen=True)
class CreatedLink:
    """What the relay answered to a new link."""

    link_id: str
    url: str


class RelayClient:
    """Signed management requests to one relay."""

    def __init__(
        self, base_url: str, identity: keys.Identity, fetcher: Fetcher, clock: Clock
    ) -> None:
        self.base = relay_base(base_url)
        self.identity = identity
        self.fetcher = fetcher
        self.clock = clock

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Answer:
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        target = parse_url(self.base + path, "the relay URL").target
        headers = {
            "Authorization": protocol.sign_request(
                self.identity, method, target, content, self.clock()
            ),
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        answer = self.fetcher.exchange(
            method,
            self.base + path,
            "the relay",
            max_bytes=MAX_ANSWER_BYTES,
            body=content if body is not None else None,
            headers=headers,
        )
        if answer.status in (401, 403):
            raise AccessDeniedError(
                f"the relay refused this wallet's signed request (HTTP {answer.status})",
                "only the wallet that created a link may manage it; check the relay's clock",
            )
        if answer.status == 404:
            raise NotFoundError(
                "the relay knows no such link (unknown, expired or revoked)",
                "list your links with `healthwallet link list`",
            )
        if answer.status == 429:
            raise NetworkError(
                "the relay asks to slow down (HTTP 429)", _retry_hint(answer.headers)
            )
        if not 200 <= answer.status < 300:
            raise NetworkError(f"the relay answered HTTP {answer.status}")
        return answer

    def _json(self, answer: Answer) -> dict[str, Any]:
        return jsonutil.load_object(answer.body or b"{}", "the relay's answer", error=NetworkError)

    def create(
        self,
        link_id: str,
        files: Sequence[str],
        *,
        flag: str,
        exp: int | None,
        passcode: str | None,
    ) -> CreatedLink:
        """Upload a new link's encrypted files and rules; the relay's id and manifest URL."""
        body: dict[str, Any] = {
            "id": link_id,
            "flag": flag,
            "files": [{"contentType": "application/fhir+json", "jwe": f} for f in files],
        }
        if exp is not None:
            body["exp"] = exp
        if passcode is not None:
            body["passcode"] = passcode
        answer = self._json(self._call("POST", protocol.API_LINKS, body))
        created_id = jsonutil.optional(answer, "id", str, "the relay's answer", NetworkError)
        created_id = created_id or link_id
        url = jsonutil.optional(answer, "url", str, "the relay's answer", NetworkError)
        url = url or f"{self.base}{protocol.MANIFEST_PREFIX}{created_id}"
        if not url.startswith(self.base) or created_id not in url:
            raise NetworkError(
                f"the relay answered a link address outside itself: {escape(url[:200])}"
            )
        payload.check_manifest_url(url, "the manifest URL the relay gave")
        return CreatedLink(created_id, url)

    def list_links(self) -> list[dict[str, Any]]:
        """The relay's view of this wallet's links."""
        answer = self._json(self._call("GET", protocol.API_LINKS))
        return jsonutil.items_of(
            answer.get("links", []), dict, "the relay's link list", NetworkError
        )

    def update(self, link_id: str, files: Sequence[str]) -> None:
        """Replace a long-term link's files (same key, same URL)."""
        body = {"files": [{"contentType": "application/fhir+json", "jwe": f} for f in files]}
        self._call("PUT", f"{protocol.API_LINKS}/{link_id}", body)

    def revoke(self, link_id: str) -> None:
        """Revoke a link: from now on the relay answers 404 for it."""
        self._call("DELETE", f"{protocol.API_LINKS}/{link_id}")

    def log(self, link_id: str) -> list[dict[str, Any]]:
        """Who resolved the link and when (the relay's access log)."""
        answer = self._json(self._call("GET", f"{protocol.API_LINKS}/{link_id}/log"))
        return jsonutil.items_of(answer.get("log", []), dict, "the relay's link log", NetworkError)


def _retry_hint(headers: Mapping[str, str]) -> str:
    after = headers.get("retry-after", "")
    if after.isdigit() and len(after) < 8:
        return f"try again in {int(after)} s"
    return "try again later"
