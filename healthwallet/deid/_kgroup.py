"""k-anonymity grouping in DuckDB: equivalence classes per ladder level, k of what is written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from healthwallet.deid._kanon import (
    LADDER,
    KAnonResult,
    Level,
    Quasi,
    Rewrite,
    check_quasi,
    generalize_resource,
    resource_facts,
)
from healthwallet.deid._policy import restricted_zip3
from healthwallet.errors import BadInputError, UsageError

FACT_SCHEMA = pa.schema(
    [("unit", pa.int64()), ("kind", pa.string()), ("text", pa.string()), ("num", pa.int64())]
)
FactRow = tuple[int, str, str, int | None]


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The tables the planner reads: units, their facts, and the facts as written."""
    con.execute("CREATE TABLE units (unit BIGINT)")
    con.execute("CREATE TABLE unit_facts (unit BIGINT, kind VARCHAR, text VARCHAR, num BIGINT)")
    con.execute("CREATE TABLE out_facts (unit BIGINT, kind VARCHAR, text VARCHAR, num BIGINT)")


def insert_facts(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[FactRow]) -> None:
    """Append fact rows to ``unit_facts`` or ``out_facts`` in one Arrow batch."""
    if not rows:
        return
    if table not in ("unit_facts", "out_facts"):
        raise ValueError(table)
    columns = list(zip(*rows, strict=True))
    batch = pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, FACT_SCHEMA, strict=True)],
        schema=FACT_SCHEMA,
    )
    con.register("fact_batch", batch)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM fact_batch")  # noqa: S608 (fixed names)
    finally:
        con.unregister("fact_batch")


def _band_sql(age: str, width: int) -> str:
    low = f"(({age}) // {width} * {width})"
    return (
        f"CASE WHEN ({age}) > 89 THEN '90+' ELSE CAST({low} AS VARCHAR) || '-' || "
        f"CAST(least({low} + {width - 1}, 89) AS VARCHAR) END"
    )


def _key_sql(quasi: Quasi, level: Level, ref_year: int) -> str:
    """A SQL expression: one fact generalized at ``level`` as "kind=value", NULL if removed."""
    null = "NULL"
    year_kept = quasi.has("birth_year") and level.birth_year
    if year_kept:
        birth = "'birth=' || text"
    elif quasi.has("age_band"):
        age = f"greatest(0, {int(ref_year)} - num)"
        birth = f"'band=' || CASE WHEN num IS NULL THEN text ELSE {_band_sql(age, level.band)} END"
    else:
        birth = null
    band = "'band=' || text" if quasi.has("age_band") else null
    age = (
        f"'age=' || CASE WHEN num IS NULL THEN text ELSE {_band_sql('num', level.band)} END"
        if quasi.has("age")
        else null
    )

    def plain(name: str, kind: str, kept: bool) -> str:
        return f"'{kind}=' || text" if quasi.has(name) and kept else null

    kept = "true" if level.extras else "false"
    extras = (
        f"CASE WHEN {kept} OR list_contains($pinned::VARCHAR[], kind) THEN kind || '=' || text END"
    )
    return (
        "CASE kind "
        f"WHEN 'gender' THEN {plain('gender', 'gender', True)} "
        f"WHEN 'birth' THEN {birth} WHEN 'band' THEN {band} "
        f"WHEN 'zip' THEN {plain('zip3', 'zip', level.zip_kept)} "
        f"WHEN 'state' THEN {plain('state', 'state', level.state)} "
        f"WHEN 'country' THEN {plain('country', 'country', level.country)} "
        f"WHEN 'age' THEN {age} "
        f"ELSE CASE WHEN starts_with(kind, 'p.') THEN {extras} END END"
    )


def _class_sizes(units: str, facts: str, key: str) -> str:
    """SQL for (unit, key) where key is the sorted list of the unit's generalized facts.

    Table names and ``key`` are built from constants in this module, never from input.
    """
    return (
        f"SELECT u.unit, list_sort(list_distinct(list(f.g))) AS key FROM {units} u "  # noqa: S608
        f"LEFT JOIN (SELECT unit, {key} AS g FROM {facts}) f USING (unit) GROUP BY u.unit"
    )


@dataclass(frozen=True)
class Plan:
    """The level chosen, what each level would suppress, and the units kept."""

    number: int
    level: Level
    tried: list[dict[str, Any]]
    suppressed: int
    small_classes: int
    within: bool


def plan(
    con: duckdb.DuckDBPyConnection,
    quasi: Quasi,
    k: int,
    *,
    ref_year: int,
    generalize: bool,
    max_suppression: float,
) -> Plan:
    """Choose the lowest ladder level within ``max_suppression``; fill table ``kept_units``."""
    total = con.execute("SELECT count(*) FROM units").fetchone()
    count = int(total[0]) if total else 0
    pinned = {"pinned": sorted(f"p.{name}" for name in quasi.pinned)}
    ladder = LADDER if generalize else LADDER[:1]
    tried: list[dict[str, Any]] = []
    best: tuple[int, int] | None = None
    chosen: int | None = None
    for number, level in enumerate(ladder):
        sizes = _class_sizes("units", "unit_facts", _key_sql(quasi, level, ref_year))
        row = con.execute(
            f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM ({sizes}) "  # noqa: S608
            "GROUP BY key) WHERE n < $k",
            {**pinned, "k": k},
        ).fetchone()
        small = int(row[0]) if row else 0
        tried.append({"level": number, **level.describe(), "suppressed": small})
        if best is None or small < best[1]:
            best = (number, small)
        if small <= max_suppression * count:
            chosen = number
            break
    assert best is not None  # the ladder is never empty
    number = chosen if chosen is not None else best[0]
    level = ladder[number]
    sizes = _class_sizes("units", "unit_facts", _key_sql(quasi, level, ref_year))
    con.execute(
        f"CREATE OR REPLACE TABLE unit_class AS SELECT unit, key, "  # noqa: S608
        f"count(*) OVER (PARTITION BY key) AS n FROM ({sizes})",
        pinned,
    )
    con.execute(
        "CREATE OR REPLACE TABLE kept_units AS SELECT unit FROM unit_class WHERE n >= $k", {"k": k}
    )
    row = con.execute(
        "SELECT count(*), count(DISTINCT key) FROM unit_class WHERE n < $k", {"k": k}
    ).fetchone()
    suppressed, small_classes = (int(row[0]), int(row[1])) if row else (0, 0)
    return Plan(number, level, tried, suppressed, small_classes, chosen is not None)


def written_classes(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(k, number of classes) of the facts as written (``out_facts``, over ``kept_units``)."""
    sizes = _class_sizes("kept_units", "out_facts", "kind || '=' || text")
    row = con.execute(
        f"SELECT coalesce(min(n), 0), count(*) FROM (SELECT count(*) AS n FROM ({sizes}) "  # noqa: S608
        "GROUP BY key)"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def suppression_reasons(k: int, plan_: Plan) -> list[dict[str, Any]]:
    """The report's suppression reasons."""
    if not plan_.suppressed:
        return []
    return [
        {
            "reason": f"equivalence class smaller than k={k}",
            "classes": plan_.small_classes,
            "patients": plan_.suppressed,
        }
    ]


def check_k(k: object, max_suppression: float) -> int:
    """A valid k (and maximum suppression share), or UsageError."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError("k must be a positive integer")
    if not 0 <= max_suppression <= 1:
        raise UsageError("max_suppression must be between 0 and 1")
    return k


def _facts_rows(unit: int, resources: Iterable[dict[str, Any]], rewrite: Rewrite) -> list[FactRow]:
    return [
        (unit, fact.kind, fact.text, fact.num)
        for resource in resources
        for fact in resource_facts(resource, rewrite.ref_year, rewrite.restricted)
    ]


def k_anonymize(
    patients: list[list[dict[str, Any]]],
    quasi: Sequence[str] | None = None,
    k: int = 5,
    *,
    now: datetime | None = None,
    generalize: bool = True,
    max_suppression: float = 0.05,
) -> KAnonResult:
    """Keep only patients whose quasi-identifiers are shared by at least k patients (in memory)."""
    check_k(k, max_suppression)
    if not isinstance(patients, list) or not all(
        isinstance(records, list) and all(isinstance(r, dict) for r in records)
        for records in patients
    ):
        raise BadInputError("k_anonymize takes a list of patients, each a list of FHIR resources")
    checked = check_quasi(quasi)
    ref_year = (now or datetime.now(UTC)).year
    base = Rewrite(checked, LADDER[0], ref_year, frozenset(restricted_zip3()))
    con = duckdb.connect(":memory:")
    try:
        create_tables(con)
        con.execute("INSERT INTO units SELECT range FROM range($n)", {"n": len(patients)})
        for index, records in enumerate(patients):
            insert_facts(con, "unit_facts", _facts_rows(index, records, base))
        chosen = plan(
            con,
            checked,
            k,
            ref_year=ref_year,
            generalize=generalize,
            max_suppression=max_suppression,
        )
        kept_ids = sorted(int(r[0]) for r in con.execute("SELECT unit FROM kept_units").fetchall())
        how = Rewrite(checked, chosen.level, ref_year, base.restricted)
        kept = []
        for index in kept_ids:
            rewritten = [generalize_resource(r, how) for r in patients[index]]
            insert_facts(con, "out_facts", _facts_rows(index, rewritten, how))
            kept.append(rewritten)
        k_achieved, classes = written_classes(con) if kept else (0, 0)
    finally:
        con.close()
    kept_set = set(kept_ids)
    suppressed = [i for i in range(len(patients)) if i not in kept_set]
    report: dict[str, Any] = {
        "k": k,
        "k_achieved": k_achieved,
        "quasi_identifiers": list(checked.names),
        "patients": len(patients),
        "kept": len(kept),
        "suppressed": len(suppressed),
        "equivalence_classes": classes,
        "generalization": {"level": chosen.number, **chosen.level.describe()},
        "levels_tried": chosen.tried,
        "suppression_reasons": suppression_reasons(k, chosen),
        "max_suppression": max_suppression,
        "within_max_suppression": chosen.within,
    }
    return KAnonResult(kept, suppressed, k_achieved, report)
