"""FHIR NDJSON (the Bulk Data export format): one resource per line, read with bounded memory.

Every line is read on its own, at most ``MAX_LINE_BYTES`` long, so a file of any size costs one
line of memory. A line that is not a FHIR resource stops the reader with a ``BadInputError``
naming its line number, never its content. Blank lines are skipped (their numbers still count).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import jsonutil
from ..errors import BadInputError
from ._summary import Synopsis, Tally

MEDIA_TYPE = "application/fhir+ndjson"
SUFFIX = ".ndjson"
MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longest line (one resource) read; a longer one is refused with its line number."""
MAX_RESOURCE_TYPES = 256
"""Most distinct resource types one file may name (FHIR R4 defines about 150)."""

_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
_BOM = b"\xef\xbb\xbf"
_HINT = "each line must be one FHIR resource as a JSON object (FHIR Bulk Data NDJSON)"


@dataclass(frozen=True)
class Line:
    """One resource line: its 1-based number, where its bytes are, and the resource."""

    number: int
    offset: int
    length: int  # without the line ending
    resource: dict[str, Any]


def resource_type(value: object) -> str | None:
    """The resource type of a parsed value when it is a FHIR resource (a plain type name)."""
    if not isinstance(value, dict):
        return None
    kind = value.get("resourceType")
    return kind if isinstance(kind, str) and _RESOURCE_TYPE.fullmatch(kind) else None


def parse_line(raw: bytes, number: int) -> dict[str, Any]:
    """One line as a FHIR resource; BadInputError naming ``number`` (never the content)."""
    try:
        value = jsonutil.loads(raw, max_bytes=MAX_LINE_BYTES + 2, what=f"line {number}")
    except ValueError:
        raise BadInputError(f"line {number} of the NDJSON file is not valid JSON", _HINT) from None
    if resource_type(value) is None:
        raise BadInputError(
            f"line {number} of the NDJSON file is not a FHIR resource "
            "(a JSON object with a resourceType)",
            _HINT,
        )
    resource: dict[str, Any] = value
    return resource


def read_lines(handle: BinaryIO, max_line: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """Each resource line of an NDJSON stream, from its start, checked as it is read."""
    offset = 0
    number = 0
    while True:
        raw = handle.readline(max_line + 2)
        if not raw:
            return
        number += 1
        skip = 3 if number == 1 and raw.startswith(_BOM) else 0
        start = offset + skip
        offset += len(raw)
        body = raw[skip:].rstrip(b"\r\n")
        if len(body) > max_line:
            raise BadInputError(
                f"line {number} of the NDJSON file is longer than {max_line // (1024 * 1024)} MiB",
                "split that resource out, or add the file whole with --type other",
            )
        if not body.strip(b" \t"):
            continue
        yield Line(number, start, len(body), parse_line(body, number))


def looks_like_ndjson(path: Path) -> bool:
    """True when the file's first line is a FHIR resource and another line follows it."""
    with path.open("rb") as handle:
        first = handle.readline(MAX_LINE_BYTES + 2)
        body = first.rstrip(b"\r\n").removeprefix(_BOM)
        if len(body) > MAX_LINE_BYTES or not first.endswith(b"\n"):
            return False
        try:
            value = jsonutil.loads(body, max_bytes=MAX_LINE_BYTES + 2)
        except ValueError:
            return False
        if resource_type(value) is None:
            return False
        while block := handle.read(64 * 1024):
            if block.strip():
                return True
    return False


def summarize(path: Path) -> Synopsis:
    """Counts, date range and title of an NDJSON file, read line by line (every line checked)."""
    tally = Tally()
    with path.open("rb") as handle:
        for line in read_lines(handle):
            tally.add(line.resource)
            if len(tally.counts) > MAX_RESOURCE_TYPES:
                raise BadInputError(
                    f"the NDJSON file names more than {MAX_RESOURCE_TYPES} resource types",
                    _HINT,
                )
    if not tally.counts:
        raise BadInputError("the NDJSON file holds no resources", _HINT)
    return tally.synopsis()
