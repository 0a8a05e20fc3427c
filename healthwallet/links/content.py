"""What a link carries: vault records as FHIR Bundles, documents and images as DocumentReference.

Any SHL viewer reads ``application/fhir+json``. A FHIR record travels as its own Bundle (a bare
resource is wrapped in a ``collection`` Bundle); PDFs, images and other files travel together
in one more ``collection`` Bundle, each as a DocumentReference whose attachment holds the bytes
(base64) and the media type, as the CMS "Kill the Clipboard" SHL profile lays out a rendered
document next to the clinical Bundle. A single-file (U) link carries everything in one Bundle;
a link of more than ``MAX_FILES`` files carries all FHIR records in one Bundle.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .. import jsonutil
from ..errors import BadInputError

FHIR_JSON: Final = "application/fhir+json"
MAX_FILES: Final = 50  # files per link a relay takes (docs/format-link.md)


@dataclass(frozen=True)
class SharedRecord:
    """One vault record on its way into a link."""

    record_type: str  # "fhir", "pdf", "image", "other"
    media_type: str
    label: str
    content: bytes


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource}


def _collection(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _resource(record: SharedRecord) -> dict[str, Any]:
    parsed = jsonutil.loads(record.content, max_bytes=len(record.content) + 1, what="a record")
    if not isinstance(parsed, dict) or not isinstance(parsed.get("resourceType"), str):
        raise BadInputError("a FHIR record in the vault is not a FHIR resource")
    return parsed


def document_reference(record: SharedRecord) -> dict[str, Any]:
    """A DocumentReference carrying a file's bytes inline, so any FHIR viewer can show it."""
    attachment: dict[str, Any] = {
        "contentType": record.media_type,
        "data": base64.b64encode(record.content).decode("ascii"),
        "size": len(record.content),
    }
    if record.label:
        attachment["title"] = record.label
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": attachment}],
    }


def _entries_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    if resource.get("resourceType") != "Bundle":
        return [_entry(resource)]
    entries = resource.get("entry") or []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def link_files(records: Sequence[SharedRecord], *, single_file: bool) -> list[bytes]:
    """The plaintext ``application/fhir+json`` files for ``records`` (one when single_file)."""
    documents = [_entry(document_reference(r)) for r in records if r.record_type != "fhir"]
    fhir = [_resource(r) for r in records if r.record_type == "fhir"]
    if single_file:
        bundles = [_collection([e for r in fhir for e in _entries_of(r)] + documents)]
    elif len(fhir) + bool(documents) > MAX_FILES:
        # A relay takes at most MAX_FILES files per link: past that, FHIR records share one.
        bundles = [_collection([e for r in fhir for e in _entries_of(r)])]
    else:
        bundles = [
            r if r.get("resourceType") == "Bundle" else _collection(_entries_of(r)) for r in fhir
        ]
    if documents and not single_file:
        bundles.append(_collection(documents))
    return [
        json.dumps(b, separators=(",", ":"), ensure_ascii=False).encode("utf-8") for b in bundles
    ]
