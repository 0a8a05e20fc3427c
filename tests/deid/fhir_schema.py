"""Validate FHIR R4 JSON with the official FHIR R4 JSON schema (tests/deid/data/README.md)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = Path(__file__).resolve().parent / "data" / "fhir.schema.json.gz"


@cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    return loaded


@cache
def _validator(resource_type: str) -> jsonschema.Draft6Validator:
    schema = _schema()
    # Draft 6: a $ref replaces its siblings, so this checks against that type's definition
    # (the root's oneOf over all 146 types would be tried one by one).
    rooted = {"$schema": schema["$schema"], "definitions": schema["definitions"]}
    rooted["$ref"] = f"#/definitions/{resource_type}"
    return jsonschema.Draft6Validator(rooted)


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """The schema's complaints about one resource: `path: message`, none when it is valid R4."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in _schema()["definitions"]:
        return ["resourceType: not an R4 resource type"]
    return [
        f"{resource_type}.{'.'.join(str(p) for p in error.absolute_path)}: {error.message[:200]}"
        for error in _validator(resource_type).iter_errors(resource)
    ]
