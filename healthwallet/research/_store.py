"""The ingest's spill store: DuckDB spilling to a private work directory, bounded in memory."""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import pyarrow as pa

from ..deid._kgroup import create_tables
from ..fsutil import open_private

MEMORY_LIMIT = "64MiB"
_FLUSH_BYTES = 4 * 1024 * 1024
_FLUSH_ROWS = 4096
OUTPUT_BATCH_BYTES = 2 * 1024 * 1024
_OUTPUT_BATCH_ROWS = 1024
_MAX_BUCKET_BITS = 9  # at most 512 bucket files open at once
_RECORD = struct.Struct(">QqHI")  # order key, unit, type name length, line length

_RESOURCE_SCHEMA = pa.schema(
    [
        ("share", pa.int64()),
        ("seq", pa.int64()),
        ("type", pa.string()),
        ("hash", pa.binary()),
        ("ord", pa.uint64()),
        ("size", pa.int64()),
        ("line", pa.binary()),
    ]
)
_FACT_SCHEMA = pa.schema(
    [("share", pa.int64()), ("kind", pa.string()), ("text", pa.string()), ("num", pa.int64())]
)
_ALIAS_SCHEMA = pa.schema([("share", pa.int64()), ("alias", pa.string())])
_ID_SCHEMA = pa.schema([("id", pa.string()), ("share", pa.int64())])


class Store:
    """Resources, facts and aliases of the shares read so far, on disk.

    Rows of the share being read are buffered (a few MiB at most) and written in Arrow
    batches; :meth:`drop_share` takes back a share that failed after some rows were written.
    """

    def __init__(self, work: Path, order_key: bytes) -> None:
        # In memory, spilling to ``work/spill`` past the limit: no WAL, no fsync per share.
        self.con = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": MEMORY_LIMIT,
                "threads": 1,
                "temp_directory": str(work / "spill"),
                "preserve_insertion_order": False,
            },
        )
        self._order_key = order_key
        self._work = work
        self._rows: list[tuple[int, int, str, bytes, int, int, bytes]] = []
        self._facts: list[tuple[int, str, str, int | None]] = []
        self._aliases: list[tuple[int, str]] = []
        self._ids: list[tuple[str, int]] = []
        self._bytes = 0
        self.con.execute(
            "CREATE TABLE resources (share BIGINT, seq BIGINT, type VARCHAR, hash BLOB, "
            "ord UBIGINT, size BIGINT, line BLOB)"
        )
        self.con.execute(
            "CREATE TABLE share_facts (share BIGINT, kind VARCHAR, text VARCHAR, num BIGINT)"
        )
        self.con.execute("CREATE TABLE share_alias (share BIGINT, alias VARCHAR)")
        self.con.execute("CREATE TABLE share_ids (id VARCHAR PRIMARY KEY, share BIGINT)")
        create_tables(self.con)

    def close(self) -> None:
        """Close the database (the work directory is removed by the caller)."""
        self.con.close()

    # -- while reading a share --------------------------------------------------------------------

    def is_duplicate(self, share_id: str) -> bool:
        """True when a share with this id was already accepted."""
        if any(known == share_id for known, _ in self._ids):
            return True
        row = self.con.execute("SELECT 1 FROM share_ids WHERE id = ?", [share_id]).fetchone()
        return row is not None

    def add(self, share: int, seq: int, kind: str, line: bytes) -> None:
        """Buffer one resource of ``share`` (canonical JSON ``line``)."""
        digest = hashlib.sha256(line).digest()
        mac = hmac.new(self._order_key, seq.to_bytes(8, "big"), hashlib.sha256).digest()
        order = int.from_bytes(mac[:8], "big")
        self._rows.append((share, seq, kind, digest, order, len(line), line))
        self._bytes += len(line)
        if self._bytes >= _FLUSH_BYTES or len(self._rows) >= _FLUSH_ROWS:
            self.flush()

    def add_fact(self, share: int, kind: str, text: str, num: int | None) -> None:
        """Buffer one quasi-identifier fact of ``share``."""
        self._facts.append((share, kind, text, num))
        if len(self._facts) >= _FLUSH_ROWS:
            self.flush()

    def add_alias(self, share: int, alias: str) -> None:
        """Buffer one name linking ``share`` to its patient (issuer DID or Patient id)."""
        self._aliases.append((share, alias))
        if len(self._aliases) >= _FLUSH_ROWS:
            self.flush()

    def _insert(self, table: str, schema: pa.Schema, rows: list[Any]) -> None:
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        batch = pa.Table.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)],
            schema=schema,
        )
        self.con.register("batch", batch)
        try:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM batch")  # noqa: S608
        finally:
            self.con.unregister("batch")

    def flush(self) -> None:
        """Write the buffered rows."""
        self._insert("resources", _RESOURCE_SCHEMA, self._rows)
        self._insert("share_facts", _FACT_SCHEMA, self._facts)
        self._insert("share_alias", _ALIAS_SCHEMA, self._aliases)
        self._insert("share_ids", _ID_SCHEMA, self._ids)
        self._rows, self._facts, self._aliases, self._ids, self._bytes = [], [], [], [], 0

    def drop_share(self, share: int) -> None:
        """Forget everything read from ``share`` (it was rejected part-way)."""
        self._rows = [r for r in self._rows if r[0] != share]
        self._facts = [f for f in self._facts if f[0] != share]
        self._aliases = [a for a in self._aliases if a[0] != share]
        self._bytes = sum(r[5] for r in self._rows)
        for table in ("resources", "share_facts", "share_alias"):
            self.con.execute(f"DELETE FROM {table} WHERE share = ?", [share])  # noqa: S608

    def accept(self, share: int, share_id: str) -> None:
        """Mark ``share`` accepted (its id now counts for duplicates)."""
        self._ids.append((share_id, share))
        if len(self._ids) >= _FLUSH_ROWS:
            self.flush()

    # -- after every share is read ----------------------------------------------------------------

    def assign_units(self) -> int:
        """Group shares into patients: shares linked by an issuer DID or a Patient id are one.

        Connected components of the share-alias graph, by label propagation (a few rounds:
        the graph's diameter). Fills ``units`` and ``unit_facts``; returns the patient count.
        """
        self.flush()
        con = self.con
        con.execute("CREATE TABLE share_unit AS SELECT share, share AS unit FROM share_ids")
        while True:
            con.execute(
                "CREATE OR REPLACE TABLE next_unit AS "
                "SELECT a.share, least(min(u.unit), min(own.unit)) AS unit FROM share_alias a "
                "JOIN share_alias b USING (alias) JOIN share_unit u ON u.share = b.share "
                "JOIN share_unit own ON own.share = a.share GROUP BY a.share"
            )
            changed = con.execute(
                "SELECT count(*) FROM next_unit n JOIN share_unit s USING (share) "
                "WHERE n.unit < s.unit"
            ).fetchone()
            if not changed or not changed[0]:
                break
            con.execute(
                "UPDATE share_unit SET unit = n.unit FROM next_unit n "
                "WHERE share_unit.share = n.share AND n.unit < share_unit.unit"
            )
        con.execute("INSERT INTO units SELECT DISTINCT unit FROM share_unit")
        con.execute(
            "INSERT INTO unit_facts SELECT DISTINCT u.unit, f.kind, f.text, f.num "
            "FROM share_facts f JOIN share_unit u USING (share)"
        )
        row = con.execute("SELECT count(*) FROM units").fetchone()
        return int(row[0]) if row else 0

    def ordered_batches(self) -> Iterator[list[tuple[int, str, bytes]]]:
        """The kept resources (one copy per patient) in the secret order, batch by batch.

        DuckDB cannot sort the resources with their JSON in a small memory limit, so the
        order is made here: one sequential pass deals each (order key, unit, type, line) into
        2**n bucket files by the top bits of its uniformly random order key, then each bucket
        (about ``OUTPUT_BATCH_BYTES`` or ``_OUTPUT_BATCH_ROWS``) is read, sorted and yielded
        as (unit, type, canonical JSON) rows. Memory holds one bucket.
        """
        con = self.con
        con.execute(
            "CREATE TABLE chosen AS SELECT u.unit, min(r.seq) AS seq FROM resources r "
            "JOIN share_unit u USING (share) JOIN kept_units k ON k.unit = u.unit "
            "GROUP BY u.unit, r.hash"
        )
        row = con.execute(
            "SELECT count(*), coalesce(sum(r.size), 0) FROM chosen c JOIN resources r USING (seq)"
        ).fetchone()
        rows, size = (int(row[0]), int(row[1])) if row else (0, 0)
        wanted = max(1, -(-rows // _OUTPUT_BATCH_ROWS), -(-size // OUTPUT_BATCH_BYTES))
        bits = min(_MAX_BUCKET_BITS, (wanted - 1).bit_length())
        buckets = [self._work / f"bucket-{i:04x}" for i in range(1 << bits)]
        handles: dict[int, BinaryIO] = {}
        try:
            cursor = con.execute(
                "SELECT r.ord, c.unit, r.type, r.line FROM chosen c JOIN resources r USING (seq)"
            )
            while chunk := cursor.fetchmany(_OUTPUT_BATCH_ROWS):
                for order, unit, kind, line in chunk:
                    number = int(order) >> (64 - bits) if bits else 0
                    handle = handles.get(number)
                    if handle is None:
                        handle = handles[number] = open_private(buckets[number])
                    name = str(kind).encode()
                    data = bytes(line)
                    handle.write(_RECORD.pack(int(order), int(unit), len(name), len(data)))
                    handle.write(name + data)
        finally:
            for handle in handles.values():
                handle.close()
        con.execute("DROP TABLE resources")
        con.execute("DROP TABLE chosen")
        for number, path in enumerate(buckets):
            if number in handles:
                yield _read_bucket(path)
                path.unlink()


def _read_bucket(path: Path) -> list[tuple[int, str, bytes]]:
    """One bucket file's rows, sorted by their order key."""
    records: list[tuple[int, int, str, bytes]] = []
    with path.open("rb") as handle:
        while header := handle.read(_RECORD.size):
            order, unit, name_length, length = _RECORD.unpack(header)
            name = handle.read(name_length).decode()
            records.append((order, unit, name, handle.read(length)))
    records.sort(key=lambda record: record[0])
    return [(unit, name, line) for _, unit, name, line in records]
