"""The one file-name sanitiser: a name from a credential or a file becomes a safe base name."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 200

# Characters that draw as a slash (or backslash) without being one: a name holding them
# would look like a path. U+2215 DIVISION SLASH, U+2044 FRACTION SLASH, U+FF0F FULLWIDTH
# SOLIDUS, U+29F8 BIG SOLIDUS, U+2571 BOX DRAWINGS LIGHT DIAGONAL, U+1735 PHILIPPINE SINGLE
# PUNCTUATION, U+2CC1/U+2CC2 COPTIC, U+FE68 SMALL REVERSE SOLIDUS, U+FF3C FULLWIDTH REVERSE
# SOLIDUS, U+29F5/U+29F9/U+2216 reverse-solidus look-alikes, U+27CB/U+27CD math slashes.
_LOOKALIKE_SLASHES = frozenset(
    "\u2215\u2044\uff0f\u29f8\u2571\u1735\u2cc1\u2cc2\u27cb\u27cd"
    "\ufe68\uff3c\u29f5\u29f9\u2216\u2572"
)
# Unicode categories that never belong in a file name: controls (C0, DEL, C1), format
# characters (bidi overrides, embeddings, isolates, marks, zero-width joiners, BOM), surrogates,
# unassigned code points, and line or paragraph separators.
_BANNED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
# Characters some file systems refuse or give meaning to (Windows, macOS).
_RESERVED_CHARS = frozenset('/\\:*?"<>|')
_RESERVED_NAMES = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)


def _clean_char(char: str) -> str:
    if (
        char in _LOOKALIKE_SLASHES
        or char in _RESERVED_CHARS
        or unicodedata.category(char) in _BANNED_CATEGORIES
    ):
        return "_"
    return char


def safe_file_name(name: str, fallback: str) -> str:
    """A plain base name for ``name``: never a path, hidden, reserved or misleading on screen.

    Real slashes keep only the last component; look-alike slashes, controls (C0, DEL, C1),
    bidi and other format characters and reserved characters become ``_``; leading dots and
    surrounding spaces go; Windows device names get a ``_`` prefix; the length is capped at
    200 bytes of UTF-8 (keeping the extension). ``fallback`` (itself plain) is used when
    nothing is left.
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    base = "".join(_clean_char(char) for char in base)
    base = base.strip(" ").lstrip(".").rstrip(". ")
    if _RESERVED_NAMES.match(base):
        base = "_" + base
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, suffix = base.rpartition(".")
        if not dot or len(suffix) > 16 or not stem:
            stem, dot, suffix = base, "", ""
        while len((stem + dot + suffix).encode("utf-8")) > MAX_NAME_BYTES:
            stem = stem[:-1]
        base = stem + dot + suffix
    if not base.strip("._ "):
        return fallback
    return base
