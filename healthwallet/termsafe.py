"""One escaper for text shown on a terminal: controls and bidi marks are shown, never obeyed.

Every string that reaches a terminal may come from a file, a credential, a DID document, a URL
or the network. A terminal obeys C0/C1 control characters (``ESC [2J`` clears the screen, ``CR``
rewrites a line) and the Unicode bidirectional controls reorder what is shown, so a string
holding them can redraw the output around it. Each such character is written as a visible
escape instead: ``\\x1b`` for C0, DEL and C1, ``\\u202e`` for the bidi and line-separator marks.
"""

from __future__ import annotations

from typing import Final

# Unicode bidi embeddings/overrides (U+202A-202E), isolates (U+2066-2069), the implicit marks
# (LRM, RLM, ALM), and the line/paragraph separators some terminals break lines on.
_BIDI: Final = (
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x200E,
    0x200F,
    0x061C,
    0x2028,
    0x2029,
)


def _table(keep_newlines: bool) -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    table.update({code: f"\\u{code:04x}" for code in _BIDI})
    if keep_newlines:
        del table[0x0A]
    return table


_ONE_LINE: Final = _table(keep_newlines=False)
_LINES: Final = _table(keep_newlines=True)


def escape(text: str) -> str:
    """``text`` with every control, DEL and bidi character written as a visible escape."""
    return text.translate(_ONE_LINE)


def escape_lines(text: str) -> str:
    """Like ``escape``, but line feeds stay (for multi-line text such as a traceback)."""
    return text.translate(_LINES)


def is_clean(text: str) -> bool:
    """True when ``text`` holds nothing that ``escape`` would change."""
    return escape(text) == text
