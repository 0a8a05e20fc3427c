"""Small synthetic shares for the ingest tests: datasets built directly, files re-framed."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from share_helpers import patient_identity, share

from healthwallet import research, shares
from healthwallet.envelope import canonical_json

ZIPS = {"MA": "02139", "OR": "97205", "CO": "80202"}


def patient_resources(
    number: int,
    *,
    gender: str = "female",
    birth: str = "1980",
    state: str = "MA",
    country: str | None = "US",
    observations: int = 3,
    extra: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """A de-identified-looking patient: a Patient and a few lab Observations."""
    address: dict[str, Any] = {"postalCode": ZIPS.get(state, "02139")[:3], "state": state}
    if country is not None:
        address["country"] = country
    pid = f"p{number:05d}"
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "gender": gender,
            "birthDate": birth,
            "address": [address],
        }
    ]
    for index in range(observations):
        out.append(
            {
                "resourceType": "Observation",
                "id": f"o{number:05d}-{index}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                "subject": {"reference": f"Patient/{pid}"},
                "valueQuantity": {"value": 90 + index, "unit": "mg/dL"},
            }
        )
    return out + (extra or [])


def share_file(root: Path, number: int, resources: list[dict[str, Any]], **kwargs: Any) -> Path:
    """Write patient ``number``'s share of ``resources`` to ``root``."""
    identity = patient_identity(10_000 + number)
    shared = share(
        root / f"home-{number}", identity, [], dataset=shares.Dataset(resources), **kwargs
    )
    path = root / f"share-{number}.hwshare"
    path.write_bytes(shared.data)
    return path


def reframe(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """The share file with its header JSON edited (and re-framed, so it still parses)."""
    start = len(shares.MAGIC)
    (length,) = struct.unpack(">I", data[start : start + 4])
    header = json.loads(data[start + 4 : start + 4 + length])
    edit(header)
    raw = canonical_json(header)
    return shares.MAGIC + struct.pack(">I", len(raw)) + raw + data[start + 4 + length :]


def read_dataset(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Every NDJSON file of a dataset directory, by resource type."""
    return {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(out.glob("*.ndjson"))
    }


def dataset_text(out: Path) -> str:
    """Everything a dataset directory says, as text (Parquet tables read back row by row)."""
    import pyarrow.parquet as pq

    parts = []
    for path in sorted(out.iterdir()):
        if path.suffix == ".parquet":
            parts.append(json.dumps(pq.read_table(path).to_pylist()))
        else:
            parts.append(path.read_text())
    return "\n".join(parts)


def ingest(files: list[Path], *args: Any, **kwargs: Any) -> research.IngestResult:
    """research.ingest, given each share's local status list as the user would type it (a
    consent's own file:// list is never read)."""
    from local_status import local_lists

    if "status_sources" not in kwargs:
        kwargs["status_sources"] = local_lists(files)
    return research.ingest(files, *args, **kwargs)
