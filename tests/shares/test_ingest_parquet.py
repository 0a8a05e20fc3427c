"""research ingest writes Parquet beside NDJSON that DuckDB and pyarrow read as they are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from ingest_helpers import ingest, patient_resources, read_dataset, share_file
from share_helpers import LATER, RESEARCH

from healthwallet.research._columns import SCHEMA


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parquet")
    age = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]},
        "valueQuantity": {"value": 44, "unit": "a"},
        "effectiveDateTime": "2024-03-01",
    }
    files = [
        share_file(
            root,
            n,
            patient_resources(
                n,
                extra=[{**age, "id": f"a{n}", "subject": {"reference": f"Patient/p{n:05d}"}}],
            ),
        )
        for n in range(4)
    ]
    out = root / "out"
    ingest(files, RESEARCH, out, k=2, now=LATER)
    return out


def test_one_parquet_table_per_resource_type_beside_its_ndjson(dataset: Path) -> None:
    ndjson = read_dataset(dataset)
    tables = sorted(p.stem for p in dataset.glob("*.parquet"))
    assert tables == sorted(ndjson) == ["Observation", "Patient"]
    report = json.loads((dataset / "report.json").read_text())
    for kind, resources in ndjson.items():
        table = pq.read_table(dataset / f"{kind}.parquet")
        assert table.schema.equals(SCHEMA)
        assert table.num_rows == len(resources) == report["resource_types"][kind]
        # the FHIR JSON column is exactly the NDJSON line
        lines = (dataset / f"{kind}.ndjson").read_text().splitlines()
        assert sorted(table.column("resource").to_pylist()) == sorted(lines)


def test_duckdb_reads_the_tables_directly(dataset: Path) -> None:
    con = duckdb.connect()
    glob = str(dataset / "*.parquet")
    total = con.execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchone()
    assert total is not None and total[0] == 4 * 5
    rows = con.execute(
        "SELECT o.code, o.value_low, o.value_high, o.value_unit, o.date, p.gender, p.birth_year,"
        " p.zip3, p.state, p.country FROM read_parquet(?) o JOIN read_parquet(?) p"
        " ON o.patient = p.patient WHERE o.code = '30525-0'",
        [str(dataset / "Observation.parquet"), str(dataset / "Patient.parquet")],
    ).fetchall()
    assert (
        rows
        == [("30525-0", 40.0, 44.0, "a", "2024-03-01", "female", "1980", "021", "MA", "US")] * 4
    )
    labs: Any = con.execute(
        "SELECT code_system, value_number, value_unit, json_extract_string(resource, '$.status')"
        " FROM read_parquet(?) WHERE code = '2345-7' ORDER BY value_number",
        [str(dataset / "Observation.parquet")],
    ).fetchall()
    assert labs[0] == ("http://loinc.org", 90.0, "mg/dL", "final") and len(labs) == 12
