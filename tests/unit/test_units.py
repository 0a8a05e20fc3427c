"""Sizes are shown in one family of units everywhere: binary (KiB, MiB, GiB) (issue 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from healthwallet.cli._common import human_size

ROOT = Path(__file__).resolve().parents[2]
# A number followed by a decimal unit (kB, MB, GB, TB), as text shows a size.
_DECIMAL_SIZE = re.compile(r"\b\d+(?:[.,]\d+)?\s?(?:kB|KB|MB|GB|TB)(?:/s)?\b")


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (288 * 1024**2, "288.0 MiB"),
     (5 * 1024**3, "5.0 GiB"), (3 * 1024**4, "3072.0 GiB")],
    ids=["zero", "bytes", "kib", "mib", "gib", "past-gib"],
)
def test_human_size_uses_binary_units(size: int, shown: str) -> None:
    assert human_size(size) == shown


def _texts() -> list[Path]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    paths += sorted((ROOT / "healthwallet").rglob("*.py"))
    paths += sorted((ROOT / "benchmarks").rglob("*.py"))
    return [p for p in paths if "adr" not in p.parts]  # decisions keep the words they had


def test_no_output_source_or_doc_shows_a_decimal_size_unit() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _texts()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _DECIMAL_SIZE.search(line)
    ]
    assert found == []
