"""The patient's side of a relay: create, list, update and revoke links, read their log.

Every request is signed with the patient's DID key (``relay.protocol.sign_request``); the time
is injected. Each answer is hostile: it passes through the guarded fetcher (https only, no
redirect, one deadline, a size cap) and its JSON is checked member by member.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .. import jsonutil, keys
from ..errors import AccessDeniedError, BadInputError, NetworkError, NotFoundError, UsageError
from ..httpfetch import Answer, Fetcher
from ..relay import protocol
from ..termsafe import escape
from ..urls import parse_url
from . import payload

MAX_ANSWER_BYTES: Final = 4 << 20
_LINK_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")
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
        if answer.status == 401:
            raise AccessDeniedError(
                "the relay refused this wallet's signed request (HTTP 401)",
                "check that this computer's clock is right",
            )
        if answer.status == 403:
            raise AccessDeniedError(
                "the relay does not take links from this wallet, or it holds its most links",
                "ask the relay's operator (relay serve --allow-patient), or revoke old links",
            )
        if answer.status == 409:
            raise UsageError(
                "the relay refused the change (HTTP 409): only a long-term link can change",
                "create the link with --long-term",
            )
        if answer.status == 413:
            raise BadInputError(
                "the relay refused the upload as too large (HTTP 413)",
                "share fewer or smaller records per link",
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
        if answer.status == 400:
            raise BadInputError(
                f"the relay refused the request (HTTP 400: {_reason(answer.body)})",
                "see docs/format-link.md for what a relay accepts",
            )
        if not 200 <= answer.status < 300:
            raise NetworkError(f"the relay answered HTTP {answer.status}")
        return answer

    def _json(self, answer: Answer) -> dict[str, Any]:
        return jsonutil.load_object(answer.body or b"{}", "the relay's answer", error=NetworkError)

    def create(
        self,
        files: Sequence[str],
        *,
        flag: str,
        exp: int | None,
        passcode: str | None,
    ) -> CreatedLink:
        """Upload a new link's encrypted files and rules; the id and manifest URL the relay
        picked (43 random base64url characters under its base URL)."""
        body: dict[str, Any] = {
            "flag": flag,
            "files": [{"contentType": "application/fhir+json", "jwe": f} for f in files],
        }
        if exp is not None:
            body["exp"] = exp
        if passcode is not None:
            body["passcode"] = passcode
        answer = self._json(self._call("POST", protocol.API_LINKS, body))
        created_id = jsonutil.text(answer, "id", "the relay's answer", NetworkError)
        url = jsonutil.text(answer, "url", "the relay's answer", NetworkError)
        if not _LINK_ID.fullmatch(created_id) or not url.startswith(self.base):
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
        entries = jsonutil.member(answer, "entries", list, "the relay's link log", NetworkError)
        return jsonutil.items_of(entries, dict, "the relay's link log", NetworkError)


def _retry_hint(headers: Mapping[str, str]) -> str:
    after = headers.get("retry-after", "")
    if after.isdigit() and len(after) < 8:
        return f"try again in {int(after)} s"
    return "try again later"


def _reason(body: bytes) -> str:
    """The relay's ``{"error": …}`` text, escaped and cut short; never more than that."""
    try:
        value = jsonutil.loads(body, max_bytes=4096, what="an error answer")
    except ValueError:
        return "no reason given"
    text = value.get("error") if isinstance(value, dict) else None
    return escape(text[:120]) if isinstance(text, str) else "no reason given"
