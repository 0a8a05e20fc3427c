"""Resolving any spec-conformant SMART Health Link into decrypted files (for `import`).

The flow is the spec's: a ``U`` link is one file fetched with ``GET url?recipient=…``; any other
link's manifest is fetched with ``POST url`` and ``{recipient, passcode?, embeddedLengthMax}``,
and each file is ``embedded`` or fetched from its ``location``. Every answer is hostile and
bounded (the guarded fetcher, caps on counts and sizes); every failure the spec names has its
own error and exit code (docs/cli.md).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

from .. import jsonutil
from ..errors import AccessDeniedError, BadInputError, NetworkError, NotFoundError
from ..httpfetch import Answer, Fetcher
from . import jwe
from .payload import LinkPayload

MAX_MANIFEST_BYTES: Final = 16 << 20
MAX_FILES: Final = 256
MAX_FILE_BYTES: Final = 64 << 20
MAX_TOTAL_BYTES: Final = 256 << 20
"""Most plaintext one link's files may hold together: 256 files of 64 MiB each would not fit."""
EMBEDDED_LENGTH_MAX: Final = 1 << 20
MAX_RECIPIENT_CHARS: Final = 200
_JOSE: Final = "application/jose"


class LinkExpiredError(NotFoundError):
    """The link's ``exp`` has passed: nothing was fetched."""

    default_hint = "ask the sender for a new link"


class WrongPasscodeError(AccessDeniedError):
    """The relay refused the passcode (HTTP 401)."""

    default_hint = "check the passcode with the sender; each wrong guess uses up an attempt"


class RateLimitedError(NetworkError):
    """The relay asked to slow down (HTTP 429)."""


@dataclass(frozen=True)
class ResolvedFile:
    """One decrypted file of a link, with the content type its manifest entry claimed."""

    content_type: str
    content: bytes


def check_recipient(recipient: str) -> str:
    """The recipient name sent to the relay: 1-200 printable characters."""
    text = recipient.strip()
    if not text or len(text) > MAX_RECIPIENT_CHARS or not text.isprintable():
        raise BadInputError(
            "the recipient name must be 1 to 200 printable characters",
            "give your name or your organisation's with --recipient",
        )
    return text


def _refusal(answer: Answer) -> None:
    """Raise the error the spec's status codes mean; nothing for 200."""
    if answer.status == 200:
        return
    if answer.status == 401:
        remaining = _remaining_attempts(answer.body)
        left = f"; {remaining} attempt(s) left" if remaining is not None else ""
        raise WrongPasscodeError(f"the link's server refused the passcode (HTTP 401){left}")
    if answer.status == 404:
        raise NotFoundError(
            "the link is unknown, expired, revoked or used up (HTTP 404)",
            "ask the sender for a new link",
        )
    if answer.status == 429:
        after = answer.headers.get("retry-after", "")
        hint = f"try again in {int(after)} s" if after.isdigit() and len(after) < 8 else ""
        raise RateLimitedError(
            "the link's server asks to slow down (HTTP 429)", hint or "try again later"
        )
    raise NetworkError(f"the link's server answered HTTP {answer.status}")


def _remaining_attempts(body: bytes) -> int | None:
    try:
        value = jsonutil.loads(body, max_bytes=4096, what="a 401 answer")
    except ValueError:
        return None
    found = value.get("remainingAttempts") if isinstance(value, dict) else None
    if isinstance(found, bool) or not isinstance(found, int):
        return None
    return found if 0 <= found < 1 << 31 else None


def _decrypt(link: LinkPayload, compact: bytes, claimed: str | None) -> ResolvedFile:
    try:
        text = compact.decode("ascii")
    except UnicodeDecodeError:
        raise BadInputError("a link file is not a compact JWE") from None
    opened = jwe.decrypt(link.key, text, max_plaintext=MAX_FILE_BYTES)
    if claimed is not None and opened.content_type != claimed:
        raise BadInputError(
            "a link file's content type differs from the one its manifest names",
            "the link's server mixed up its files; ask the sender",
        )
    return ResolvedFile(opened.content_type, opened.content)


def _get_file(link: LinkPayload, url: str, fetcher: Fetcher, what: str) -> bytes:
    answer = fetcher.exchange("GET", url, what, max_bytes=MAX_FILE_BYTES, headers={"Accept": _JOSE})
    _refusal(answer)
    return answer.body


def _manifest_entry(entry: object, index: int) -> tuple[str, str | None, str | None]:
    what = f"the manifest's file {index + 1}"
    content_type = jsonutil.text(entry, "contentType", what)
    embedded = jsonutil.optional(entry, "embedded", str, what)
    location = jsonutil.optional(entry, "location", str, what)
    if (embedded is None) == (location is None):
        raise BadInputError(f"{what} must have either embedded or location")
    return content_type, embedded, location


def resolve(
    link: LinkPayload,
    *,
    recipient: str,
    passcode: str | None,
    fetcher: Fetcher,
    now: int,
) -> list[ResolvedFile]:
    """The decrypted files of ``link``, as ``recipient`` at unix time ``now``."""
    if link.exp is not None and link.exp < now:
        raise LinkExpiredError("the link expired; it was not fetched")
    recipient = check_recipient(recipient)
    if link.single_file:
        url = link.url + ("&" if "?" in link.url else "?")
        url += urllib.parse.urlencode({"recipient": recipient})
        return [_decrypt(link, _get_file(link, url, fetcher, "the link's file"), None)]
    if link.passcode and not passcode:
        raise BadInputError(
            "this link needs a passcode", "give it with --passcode-file, or type it at the prompt"
        )
    request: dict[str, Any] = {"recipient": recipient, "embeddedLengthMax": EMBEDDED_LENGTH_MAX}
    if link.passcode and passcode:
        request["passcode"] = passcode
    answer = fetcher.exchange(
        "POST",
        link.url,
        "the link's manifest",
        max_bytes=MAX_MANIFEST_BYTES,
        body=json.dumps(request).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    _refusal(answer)
    manifest = jsonutil.load_object(
        answer.body, "the link's manifest", max_bytes=MAX_MANIFEST_BYTES
    )
    entries = jsonutil.member(manifest, "files", list, "the link's manifest")
    if len(entries) > MAX_FILES:
        raise BadInputError(f"the link's manifest lists more than {MAX_FILES} files")
    files = []
    total = 0
    for index, entry in enumerate(entries):
        content_type, embedded, location = _manifest_entry(entry, index)
        if embedded is not None:
            files.append(_decrypt(link, embedded.encode("ascii", "replace"), content_type))
        else:
            assert location is not None
            body = _get_file(link, location, fetcher, f"file {index + 1} of the link")
            files.append(_decrypt(link, body, content_type))
        total += len(files[-1].content)
        if total > MAX_TOTAL_BYTES:
            raise jwe.DecompressionBombError(
                f"the link's files together hold more than {MAX_TOTAL_BYTES >> 20} MiB"
            )
    return files
