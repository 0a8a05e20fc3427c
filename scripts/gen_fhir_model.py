"""Build healthwallet/deid/data/fhir-r4-model.json.gz from the official FHIR R4 JSON schema.

Run: python scripts/gen_fhir_model.py [tests/deid/data/fhir.schema.json.gz]

The model keeps, for every type and backbone element, its members: the type each member
holds, whether it is a list, the allowed codes of a required binding, and which members are
required; and, for every primitive type, its JSON type and pattern. The engine walks its output
with it, so only members FHIR R4 defines leave the wallet (see docs/deidentification.md).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "deid" / "data" / "fhir.schema.json.gz"
TARGET = ROOT / "healthwallet" / "deid" / "data" / "fhir-r4-model.json.gz"


def _member(spec: dict[str, object], by_pattern: dict[str, str]) -> list[object]:
    # [type, is_list, codes or null, pattern or null]
    is_list = spec.get("type") == "array"
    inner = spec["items"] if is_list else spec
    assert isinstance(inner, dict)
    if "$ref" in inner:
        return [str(inner["$ref"]).rsplit("/", 1)[1], is_list, None, None]
    if "enum" in inner:
        return ["code", is_list, list(inner["enum"]), None]
    if "const" in inner:
        return ["code", is_list, [inner["const"]], None]
    if "pattern" in inner:
        # An inline primitive (choice forms like effectiveDateTime): name it by its pattern.
        kind = by_pattern.get(f"{inner.get('type')} {inner['pattern']}")
        if kind is None and "+/=" in str(inner["pattern"]):
            kind = "base64Binary"  # the only primitive whose pattern is inline alone
        if kind is None:
            raise SystemExit(f"unknown inline primitive: {inner}")
        return [kind, is_list, None, None]
    raise SystemExit(f"unknown member shape: {sorted(inner)}")


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    schema = json.loads(gzip.decompress(source.read_bytes()))
    definitions = schema["definitions"]
    primitives: dict[str, list[str]] = {}
    types: dict[str, dict[str, list[object]]] = {}
    required: dict[str, list[str]] = {}
    by_pattern: dict[str, str] = {}
    for name, definition in sorted(definitions.items(), reverse=True):
        if "properties" not in definition and "pattern" in definition:
            # Where primitives share a pattern (uri, url, canonical) any name checks the same.
            by_pattern[f"{definition.get('type')} {definition['pattern']}"] = name
    for name, definition in sorted(definitions.items()):
        if "properties" not in definition:
            if "pattern" in definition or "type" in definition:
                primitives[name] = [str(definition.get("type")), definition.get("pattern", "")]
            continue
        types[name] = {
            member: _member(spec, by_pattern)
            for member, spec in sorted(definition["properties"].items())
        }
        needed = [m for m in definition.get("required", []) if m != "resourceType"]
        if needed:
            required[name] = sorted(needed)
    model = {
        "source": schema.get("id"),
        "primitives": primitives,
        "types": types,
        "required": required,
    }
    text = json.dumps(model, sort_keys=True, separators=(",", ":")) + "\n"
    TARGET.write_bytes(gzip.compress(text.encode("utf-8"), 9, mtime=0))


if __name__ == "__main__":
    main()
