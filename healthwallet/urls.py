"""The one URL validator: every URL read from a credential, a setting or the command line.

A URL that is not well-formed is a ``BadInputError`` (exit 2) naming what was wrong, never a
crash: ``urllib.parse`` raises ``ValueError`` for ``http://[::1`` or a port ``:x``, and IDNA
encoding raises ``UnicodeError`` for a 300-character label. Checked here, once:

- at most ``MAX_URL_CHARS`` characters, no whitespace, no control or bidi character, no
  percent-encoded control (``%00``), no user name or password;
- a scheme from the caller's list; for http(s) a host that is a valid DNS name (IDNA, labels
  of 1-63 characters, at most 253 in all) or an IP literal, and a port from 1 to 65535.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from .errors import BadInputError
from .termsafe import escape, is_clean

MAX_URL_CHARS: Final = 2048
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)


@dataclass(frozen=True)
class Url:
    """A checked URL: its scheme, ASCII host (IDNA), port and request target."""

    text: str
    scheme: str
    host: str  # lower-case ASCII; an IPv6 literal without brackets; "" for file:
    port: int  # the scheme's default when none is written; 0 for file:
    target: str  # path and query, for the request line ("/" when empty)
    path: str  # the path alone, still percent-encoded

    @property
    def host_is_ip(self) -> bool:
        """True when the host is written as an IP address, not a name."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def _refuse(what: str, text: str, reason: str) -> BadInputError:
    shown = text if len(text) <= 200 else text[:200] + "…"
    return BadInputError(
        f"{what} is not a usable URL ({reason})" + (f": {escape(shown)}" if shown else ""),
        "give an absolute URL such as https://example.org/status/1.json",
    )


def _ascii_host(host: str, what: str, text: str) -> str:
    if host.startswith("[") or ":" in host:
        raise _refuse(what, text, "the host is not valid")
    if host.replace(".", "").isdigit():
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _refuse(what, text, "the IP address is not valid") from None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _refuse(what, text, "the host name is not a valid domain name") from None
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise _refuse(what, text, "the host name is not a valid domain name")
    try:
        for label in name.split("."):
            if label.startswith("xn--"):
                label.encode("ascii").decode("idna")  # a Punycode label must decode
    except UnicodeError:
        raise _refuse(what, text, "the host name is not valid IDNA") from None
    return name


def parse_url(
    text: object,
    what: str,
    schemes: Collection[str] = ("https",),
    *,
    fragment: bool = False,
    quote: bool = True,
) -> Url:
    """``text`` as a checked ``Url``; BadInputError (exit 2) naming ``what`` if it is not one.

    The error quotes the URL (escaped, cut at 200 characters) unless ``quote`` is False, for
    URLs that may carry a secret (an RPC endpoint's API key).
    """
    try:
        return _parse(text, what, schemes, fragment)
    except BadInputError as exc:
        if quote or not isinstance(text, str):
            raise
        raise BadInputError(exc.message.split("): ", 1)[0] + ")", exc.hint) from None


def _parse(text: object, what: str, schemes: Collection[str], fragment: bool) -> Url:
    if not isinstance(text, str) or not text:
        raise BadInputError(f"{what} is not a URL", "give an absolute https:// URL")
    if len(text) > MAX_URL_CHARS:
        raise _refuse(what, text, f"longer than {MAX_URL_CHARS} characters")
    if not is_clean(text) or any(c.isspace() for c in text) or _ENCODED_CONTROL.search(text):
        raise _refuse(what, text, "it holds spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
        hostname = parts.hostname or ""
    except ValueError:
        raise _refuse(what, text, "it cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise _refuse(what, text, f"the scheme must be {allowed}")
    if parts.fragment and not fragment:
        raise _refuse(what, text, "it has a #fragment")
    if parts.username is not None or parts.password is not None:
        raise _refuse(what, text, "it carries a user name or password")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _refuse(what, text, "a file: URL must be on this machine")
        return Url(text, scheme, "", 0, parts.path, parts.path)
    if not hostname:
        raise _refuse(what, text, "it has no host")
    if parts.netloc.rsplit("@", 1)[-1].startswith("["):
        try:
            host = str(ipaddress.IPv6Address(hostname.split("%", 1)[0]))
        except ValueError:
            raise _refuse(what, text, "the IPv6 address is not valid") from None
        if "%" in hostname:
            raise _refuse(what, text, "the IPv6 address names a zone")
    else:
        host = _ascii_host(hostname, what, text)
    hostport = parts.netloc.rsplit("@", 1)[-1].rpartition("]")[2]
    port_text = hostport.rpartition(":")[2] if ":" in hostport else None
    if port_text is not None and not (port_text.isascii() and port_text.isdigit() and port):
        raise _refuse(what, text, "the port is not valid")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Url(text, scheme, host, port or _DEFAULT_PORTS.get(scheme, 0), target, parts.path)
