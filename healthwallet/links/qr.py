"""QR codes for links: error-correction level M, as the SHL spec asks, via segno."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

import segno

from ..errors import UsageError

ERROR_LEVEL: Final = "m"
FORMATS: Final = {".png": "png", ".svg": "svg"}


def make(text: str) -> segno.QRCode:
    """The QR code of ``text`` at level M (never boosted, so readers see what the spec says)."""
    return segno.make(text, error=ERROR_LEVEL, boost_error=False, micro=False)


def image_kind(path: Path) -> str:
    """``png`` or ``svg`` from the file name; UsageError for anything else."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError("--qr writes PNG or SVG", "name the file FILE.png or FILE.svg")
    return kind


def image_bytes(text: str, kind: str) -> bytes:
    """The QR code of ``text`` as a PNG or SVG file's bytes."""
    buffer = io.BytesIO()
    make(text).save(buffer, kind=kind, scale=4, border=4)
    return buffer.getvalue()


def terminal_text(text: str) -> str:
    """The QR code of ``text`` drawn with block characters for a terminal."""
    out = io.StringIO()
    make(text).terminal(out=out, compact=True)
    return out.getvalue()
