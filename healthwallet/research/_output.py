"""The dataset's files: one NDJSON file per resource type, written into a private directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from ..fsutil import open_private


class DatasetWriter:
    """Appends canonical JSON lines to ``<ResourceType>.ndjson`` files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counts: dict[str, int] = {}
        self._ndjson: dict[str, BinaryIO] = {}

    def write(self, kind: str, line: bytes) -> None:
        """Append one resource of type ``kind``."""
        handle = self._ndjson.get(kind)
        if handle is None:
            handle = self._ndjson[kind] = open_private(self.directory / f"{kind}.ndjson")
        handle.write(line + b"\n")
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def end_batch(self) -> None:
        """A batch of rows is done (nothing to do for NDJSON)."""

    def close(self) -> list[str]:
        """Flush and close every file; returns the names written."""
        names = []
        for kind, handle in sorted(self._ndjson.items()):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            names.append(f"{kind}.ndjson")
        self._ndjson.clear()
        return names

    def abort(self) -> None:
        """Close every file without flushing (the directory is being removed)."""
        for handle in self._ndjson.values():
            handle.close()
        self._ndjson.clear()
