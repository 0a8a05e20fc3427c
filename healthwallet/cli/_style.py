"""The one place that decides colour: our own marks (✓, ✗, VALID, INVALID, error:, hint:).

Colour is on only when the stream is a terminal, ``NO_COLOR`` is unset or empty (no-color.org),
and the command was not asked for ``--json``. Colour is added around words this program chose,
never taken from data: every string from outside still passes through ``termsafe.escape``, so a
hostile escape sequence is shown as ``\\x1b[…`` text, coloured or not.
"""

from __future__ import annotations

import os
from typing import Final, TextIO

from ._common import STATE

# Select Graphic Rendition codes for each kind of mark; rich takes the same names as styles.
STYLES: Final = {"ok": ("green", "32"), "bad": ("red", "31"), "hint": ("dim", "2")}


def colour_on(stream: TextIO) -> bool:
    """True when marks written to ``stream`` should be coloured."""
    if os.environ.get("NO_COLOR", "") != "" or STATE.json:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def paint(word: str, kind: str, stream: TextIO) -> str:
    """``word`` (our own text, never data) in the colour of ``kind`` when ``stream`` takes it."""
    if not colour_on(stream):
        return word
    return f"\x1b[{STYLES[kind][1]}m{word}\x1b[0m"
