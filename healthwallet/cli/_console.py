"""The rich console for tables and other renderables: hostile text escaped, our marks coloured."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from ..termsafe import escape
from ._style import STYLES, Marked, colour_on


class SafeConsole(Console):
    """A rich Console that shows every string it renders through ``termsafe.escape``.

    Printed strings and table cells both pass through ``render_str``, so text from a file, a
    credential or the network cannot move the cursor, recolour or reorder the screen. Markup,
    emoji codes and highlighting are off: ``[bold]`` in a hostile string is shown as typed.
    Colour comes only from our marks (``_style.mark``), and only where ``colour_on`` allows it.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """The escaped ``text`` as rich Text (markup never interpreted)."""
        kwargs["markup"] = False
        kwargs["emoji"] = False
        return super().render_str(escape(text), **kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """``Console.print``, with our marked lines (``_style.line``) shown in their colours."""
        super().print(*map(as_rich, objects), **kwargs)


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


def as_rich(item: Any) -> Any:
    """``item`` as rich renders it: a marked line becomes styled Text (data escaped)."""
    if not isinstance(item, Marked):
        return item
    return Text.assemble(
        *((text, STYLES[kind][0]) if kind else escape(text) for text, kind in item.parts)
    )
