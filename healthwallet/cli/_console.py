"""The rich console every command prints through: hostile text escaped, our marks coloured."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from ..termsafe import escape
from ._style import STYLES, colour_on


class SafeConsole(Console):
    """A rich Console that shows every string it renders through ``termsafe.escape``.

    Printed strings and table cells both pass through ``render_str``, so text from a file, a
    credential or the network cannot move the cursor, recolour or reorder the screen. Markup,
    emoji codes and highlighting are off: ``[bold]`` in a hostile string is shown as typed.
    Colour comes only from ``mark`` and ``verdict`` (our own words), and only where
    ``_style.colour_on`` allows it.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """The escaped ``text`` as rich Text (markup never interpreted)."""
        kwargs["markup"] = False
        kwargs["emoji"] = False
        return super().render_str(escape(text), **kwargs)


def safe_console(stderr: bool = False, quiet: bool = False) -> Console:
    """A console on stdout (or stderr) that colours only when ``colour_on`` says so."""
    stream = sys.stderr if stderr else sys.stdout
    return SafeConsole(
        stderr=stderr,
        quiet=quiet,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        markup=False,
        color_system="auto" if colour_on(stream) else None,
    )


def mark(ok: bool, word: str = "") -> Text:
    """A green ✓ (or ✓ WORD) when ``ok``, else a red ✗ (✗ WORD); ``word`` is our own text."""
    text = ("✓" if ok else "✗") + (f" {word}" if word else "")
    return Text(text, style=STYLES["ok" if ok else "bad"][0])


def line(*parts: str | Text) -> Text:
    """One line from parts: strings escaped (they may quote data), marks kept as they are."""
    return Text.assemble(*(part if isinstance(part, Text) else escape(part) for part in parts))
