"""The SHL payload (SMART Health Links spec, "Construct a SMART Health Link Payload").

A link is ``shlink:/`` followed by the base64url (no padding) of a JSON object:

- ``url``: the manifest URL, at most 128 characters, with at least 256 bits of entropy;
- ``key``: 43 characters, the base64url of 32 random bytes (the files' A256GCM key);
- ``exp`` (optional): expiry in seconds since the epoch;
- ``flag`` (optional): letters from ``L`` (long-term), ``P`` (passcode), ``U`` (one file,
  fetched with GET) in alphabetical order; ``U`` never with ``P``;
- ``label`` (optional): at most 80 characters; ``v`` (optional): 1.

A viewer URL may carry the link after ``#``: ``https://viewer.example/#shlink:/…``. A link
read from elsewhere is hostile: ``parse_link`` caps its size and checks every member.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .. import jsonutil, keys
from ..errors import BadInputError, UsageError
from ..urls import parse_url

SCHEME: Final = "shlink:/"
KEY_BYTES: Final = 32
MAX_URL_CHARS: Final = 128
MAX_LABEL_CHARS: Final = 80
MIN_ENTROPY_CHARS: Final = 43  # 43 base64url characters = 258 bits >= 256
MAX_LINK_CHARS: Final = 4096  # a payload is a few hundred characters; the rest is hostile
FLAG_LETTERS: Final = "LPU"
VERSION: Final = 1

RandomBytes = Callable[[int], bytes]

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_HINT = "paste the whole link as the sender gave it (it starts with shlink:/ or https://)"


@dataclass(frozen=True)
class LinkPayload:
    """One SMART Health Link: where its manifest is, the files' key, and its rules."""

    url: str
    key: bytes
    exp: int | None = None
    flag: str = ""
    label: str | None = None
    v: int = VERSION

    @property
    def passcode(self) -> bool:
        """True when the relay asks for a passcode (flag P)."""
        return "P" in self.flag

    @property
    def long_term(self) -> bool:
        """True for a link whose content may change (flag L)."""
        return "L" in self.flag

    @property
    def single_file(self) -> bool:
        """True when ``url`` is one file fetched with GET (flag U)."""
        return "U" in self.flag

    def to_json(self) -> dict[str, Any]:
        """The payload object, members in the spec's order."""
        out: dict[str, Any] = {"url": self.url, "key": keys.b64url(self.key)}
        if self.exp is not None:
            out["exp"] = self.exp
        if self.flag:
            out["flag"] = self.flag
        if self.label:
            out["label"] = self.label
        out["v"] = self.v
        return out

    def uri(self, viewer: str | None = None) -> str:
        """``shlink:/…``, or ``viewer#shlink:/…`` when a viewer URL is given."""
        encoded = json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)
        link = SCHEME + keys.b64url(encoded.encode("utf-8"))
        return f"{viewer_prefix(viewer)}{link}" if viewer else link


def make_flag(*, passcode: bool, long_term: bool, single_file: bool) -> str:
    """The flag string, letters in alphabetical order; UsageError for U with P."""
    if single_file and passcode:
        raise UsageError(
            "a single-file link cannot have a passcode (the spec forbids flag U with P)",
            "drop --single-file, or drop the passcode",
        )
    return "".join(
        letter
        for letter, wanted in (("L", long_term), ("P", passcode), ("U", single_file))
        if wanted
    )


def new_key(random_bytes: RandomBytes) -> bytes:
    """A fresh 32-byte file key."""
    key = random_bytes(KEY_BYTES)
    if len(key) != KEY_BYTES:
        raise ValueError("the random source gave a short key")
    return key


def check_label(label: str | None) -> str | None:
    """``label`` when it fits the spec (at most 80 characters, printable), else UsageError."""
    if label is None or label == "":
        return None
    if len(label) > MAX_LABEL_CHARS:
        raise UsageError(
            f"the label is {len(label)} characters; a link's label holds at most {MAX_LABEL_CHARS}",
            "shorten --label",
        )
    if not label.isprintable():
        raise UsageError("the label holds control characters", "use plain text for --label")
    return label


def check_manifest_url(url: str, what: str = "the manifest URL") -> str:
    """``url`` when it is https, at most 128 characters, and carries a 43-character random
    path segment; BadInputError otherwise."""
    parsed = parse_url(url, what, ("https",))
    if len(url) > MAX_URL_CHARS:
        raise BadInputError(
            f"{what} is {len(url)} characters; SHL allows at most {MAX_URL_CHARS}",
            "use a relay with a shorter base URL",
        )
    segments = [s for s in parsed.path.split("/") if s]
    if not any(len(s) >= MIN_ENTROPY_CHARS and _B64URL.fullmatch(s) for s in segments):
        raise BadInputError(
            f"{what} has no path segment with 256 bits of entropy",
            "the relay must name each link with 43 random base64url characters",
        )
    return url


def viewer_prefix(viewer: str) -> str:
    """A checked viewer URL ending in ``#``, ready to take ``shlink:/…`` after it."""
    base = viewer[:-1] if viewer.endswith("#") else viewer
    parsed = parse_url(base, "the viewer URL (--viewer)", ("https",))
    if "#" in base:
        raise UsageError("the viewer URL has a #fragment already", "give it without one")
    return parsed.text + "#"


def _decode_b64url(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise BadInputError("the link's payload is not base64url", _HINT)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadInputError("the link's payload is not base64url", _HINT) from None


def _strip_viewer(text: str) -> str:
    """The ``shlink:/…`` part of a link or of a viewer URL holding one."""
    text = text.strip()
    if len(text) > MAX_LINK_CHARS:
        raise BadInputError(f"the link is longer than {MAX_LINK_CHARS} characters", _HINT)
    if text.startswith(SCHEME):
        return text
    marker = text.find("#" + SCHEME)
    if marker < 0 or not text.lower().startswith(("https://", "http://")):
        raise BadInputError("this is not a SMART Health Link (no shlink:/ in it)", _HINT)
    return text[marker + 1 :]


def _flag(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInputError("the link's flag is not a string", _HINT)
    if (
        any(letter not in FLAG_LETTERS for letter in value)
        or "".join(sorted(set(value))) != value
        or ("U" in value and "P" in value)
    ):
        raise BadInputError(
            "the link's flag is not one the spec allows",
            "flags are L, P and U in alphabetical order, and U never with P; ask the sender",
        )
    return value


def parse_link(text: str) -> LinkPayload:
    """The payload of ``shlink:/…`` (or a viewer URL holding one); BadInputError when any
    member breaks the spec. Unknown members are ignored, as the spec asks."""
    encoded = _strip_viewer(text)[len(SCHEME) :]
    if not encoded:
        raise BadInputError("the link has no payload after shlink:/", _HINT)
    body = jsonutil.load_object(_decode_b64url(encoded), "the link's payload", hint=_HINT)
    what = "the link's payload"
    url = jsonutil.text(body, "url", what)
    check_manifest_url(url, "the link's manifest URL")
    key_text = jsonutil.text(body, "key", what)
    if len(key_text) != 43 or not _B64URL.fullmatch(key_text):
        raise BadInputError("the link's key is not 43 base64url characters", _HINT)
    key = _decode_b64url(key_text)
    exp_value = body.get("exp")
    exp: int | None = None
    if exp_value is not None:
        if not jsonutil.is_a(exp_value, (int, float)) or not 0 < exp_value < 1e11:
            raise BadInputError("the link's exp is not a time in seconds", _HINT)
        exp = int(exp_value)
    label = jsonutil.optional(body, "label", str, what)
    if label is not None and len(label) > MAX_LABEL_CHARS:
        raise BadInputError(f"the link's label is longer than {MAX_LABEL_CHARS} characters", _HINT)
    version = body.get("v", VERSION)
    if not jsonutil.is_a(version, int) or version != VERSION:
        raise BadInputError("the link is of an SHL version this wallet does not know", _HINT)
    return LinkPayload(url, key, exp, _flag(body.get("flag")), label or None, version)
