"""The one place that decides colour, and the plain console that prints lines without rich.

Colour is on only when the stream is a terminal (and not ``TERM=dumb``), ``NO_COLOR`` is unset
or empty (no-color.org), and the command was not asked for ``--json``. It is added around our
own marks (✓, ✗, VALID, INVALID, ``error:``, ``hint:``), never taken from data: every string
from outside is written through ``termsafe.escape``, so a hostile escape sequence is shown as
``\\x1b[…`` text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TextIO

from ..termsafe import escape

# Each kind of mark: its rich style name and its Select Graphic Rendition code.
STYLES: Final = {"ok": ("green", "32"), "bad": ("red", "31"), "hint": ("dim", "2")}


class _Run:
    json = False  # this command line asked for --json (set by the app before it runs)


def set_json(as_json: bool) -> None:
    """Record whether this command line asked for --json (then nothing is coloured)."""
    _Run.json = as_json


def colour_on(stream: TextIO) -> bool:
    """True when marks written to ``stream`` should be coloured."""
    if os.environ.get("NO_COLOR", "") != "" or _Run.json or os.environ.get("TERM") == "dumb":
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


@dataclass(frozen=True)
class Marked:
    """A line of parts: (text, kind) for our marks, (text, None) for text to escape."""

    parts: tuple[tuple[str, str | None], ...]

    def render(self, stream: TextIO) -> str:
        """The line for ``stream``: text escaped, marks coloured where colour is on."""
        return "".join(
            paint(text, kind, stream) if kind else escape(text) for text, kind in self.parts
        )


def mark(ok: bool, word: str = "") -> Marked:
    """A green ✓ (or ✓ WORD) when ``ok``, else a red ✗ (✗ WORD); ``word`` is our own text."""
    text = ("✓" if ok else "✗") + (f" {word}" if word else "")
    return Marked(((text, "ok" if ok else "bad"),))


def line(*parts: str | Marked) -> Marked:
    """One line from parts: strings (they may quote data) are escaped, marks kept as marks."""
    out: list[tuple[str, str | None]] = []
    for part in parts:
        out.extend(part.parts if isinstance(part, Marked) else [(part, None)])
    return Marked(tuple(out))


class LineConsole:
    """Prints strings and marked lines itself, and hands anything else (a table) to the rich
    console ``make_rich`` returns, made on first need: a command with plain output never loads
    rich. Both write the same bytes for a string: it escaped, no wrapping, no markup."""

    def __init__(self, make_rich: Callable[[], Any], stderr: bool = False) -> None:
        self._make_rich = make_rich
        self._stderr = stderr
        self._rich: Any = None

    def _console(self) -> Any:
        if self._rich is None:
            self._rich = self._make_rich()
        return self._rich

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **options: Any) -> None:
        """Like ``rich.console.Console.print``."""
        if options or not all(isinstance(item, str | Marked) for item in objects):
            self._console().print(*objects, sep=sep, end=end, **options)
            return
        stream = sys.stderr if self._stderr else sys.stdout
        rendered = (
            item.render(stream) if isinstance(item, Marked) else escape(item) for item in objects
        )
        stream.write(sep.join(rendered) + end)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console(), name)
