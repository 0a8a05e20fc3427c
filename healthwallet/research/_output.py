"""The dataset's files: per resource type, ``<Type>.ndjson`` and ``<Type>.parquet``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..fsutil import open_private
from ._columns import SCHEMA, columns

_ROW_GROUP_ROWS = 50_000


class _Table:
    """One resource type's files: NDJSON lines now, Parquet rows per batch."""

    def __init__(self, directory: Path, kind: str) -> None:
        self.ndjson = open_private(directory / f"{kind}.ndjson")
        self.parquet_file = open_private(directory / f"{kind}.parquet")
        self.parquet = pq.ParquetWriter(self.parquet_file, SCHEMA, compression="zstd")
        self.rows: list[dict[str, Any]] = []

    def flush_rows(self) -> None:
        if self.rows:
            self.parquet.write_table(
                pa.Table.from_pylist(self.rows, schema=SCHEMA), row_group_size=_ROW_GROUP_ROWS
            )
            self.rows = []

    def close(self) -> None:
        self.flush_rows()
        self.parquet.close()
        for handle in (self.ndjson, self.parquet_file):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()

    def abort(self) -> None:
        for handle in (self.ndjson, self.parquet_file):
            handle.close()


class DatasetWriter:
    """Writes each resource to its type's NDJSON file and Parquet table in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counts: dict[str, int] = {}
        self._tables: dict[str, _Table] = {}

    def write(self, kind: str, resource: dict[str, Any], line: bytes) -> None:
        """Append one resource of type ``kind`` (``line``: its canonical JSON)."""
        table = self._tables.get(kind)
        if table is None:
            table = self._tables[kind] = _Table(self.directory, kind)
        table.ndjson.write(line + b"\n")
        table.rows.append(columns(resource, line.decode()))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def end_batch(self) -> None:
        """A batch of rows is done: write their Parquet rows (memory stays at one batch)."""
        for table in self._tables.values():
            table.flush_rows()

    def close(self) -> list[str]:
        """Finish every file; returns the names written."""
        for table in self._tables.values():
            table.close()
        names = [f"{kind}.{ext}" for kind in sorted(self._tables) for ext in ("ndjson", "parquet")]
        self._tables.clear()
        return names

    def abort(self) -> None:
        """Close every file (the directory is being removed)."""
        for table in self._tables.values():
            table.abort()
        self._tables.clear()
