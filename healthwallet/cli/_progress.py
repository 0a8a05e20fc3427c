"""The one progress bar: on stderr, only on a terminal, throttled, gone before the result line.

Core modules take an optional ``on_progress(n)`` callback (bytes or items just done). The CLI
passes :func:`progress`'s callback, which is ``None`` (no cost at all) under --json, --quiet,
or when stderr is not a terminal, and otherwise only adds to a counter: the bar is redrawn
at most ten times a second. Sizes are shown in binary units (KiB, MiB, GiB), as everywhere.
rich.progress is imported only when a bar is actually shown (start-up time).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._common import STATE, human_size, notes_console

MIN_BYTES = 8 * 1024 * 1024  # smaller work is done before a bar could mean anything
_REDRAW_SECONDS = 0.1

Advance = Callable[[int], None]


def progress_shown(as_json: bool = False) -> bool:
    """True when this invocation may draw a bar (a terminal on stderr, no --json/--quiet)."""
    return not (as_json or STATE.quiet) and sys.stderr.isatty()


@contextmanager
def progress(
    what: str, total: int | None, *, as_json: bool = False, unit: str = "bytes"
) -> Iterator[Advance | None]:
    """A bar for ``total`` bytes (``unit="bytes"``) or items (any other unit, e.g. "records");
    ``total=None`` draws an activity bar (``advance(0)`` starts it). Yields the callback to
    hand to the core, or None."""
    small = unit == "bytes" and total is not None and total < MIN_BYTES
    if small or not progress_shown(as_json):
        yield None
        return
    bar: Any = None
    task: Any = None
    done = 0
    drawn = time.monotonic()

    def advance(n: int) -> None:
        # The bar starts with the first bytes: a passphrase prompt never shares its line.
        nonlocal bar, task, done, drawn
        done += n
        now = time.monotonic()
        if bar is None:
            bar, task = _start(what, total, unit)
        elif now - drawn >= _REDRAW_SECONDS:
            drawn = now
            bar.update(task, completed=done)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()  # transient: its line is erased, so the result starts a clean line


def _start(what: str, total: int | None, unit: str) -> tuple[Any, Any]:
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Amount(ProgressColumn):  # "12.0 MiB/288.0 MiB  410.3 MiB/s", or "3/12 records"
        def render(self, task: Any) -> Text:
            if task.total is None and not task.completed:
                return Text("")  # an activity bar: nothing to count yet
            if unit != "bytes":
                total_text = "?" if task.total is None else str(int(task.total))
                return Text(f"{int(task.completed)}/{total_text} {unit}")
            total_text = "?" if task.total is None else human_size(int(task.total))
            speed = f"  {human_size(int(task.speed))}/s" if task.speed else ""
            return Text(f"{human_size(int(task.completed))}/{total_text}{speed}")

    bar = Progress(
        TextColumn(what),
        BarColumn(),
        Amount(),
        TimeElapsedColumn(),
        console=notes_console(),
        transient=True,
        refresh_per_second=10,
    )
    bar.start()
    return bar, bar.add_task(what, total=total)
