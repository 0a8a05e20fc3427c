"""Changing what a record says about itself (tags, label, type) without importing it again."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from . import jsonutil
from .errors import BadInputError, UsageError
from .fhir import Synopsis, Tally, ndjson, synopsis
from .filetypes import MEDIA_TYPES, RECORD_TYPES, detect_image
from .vault import Record, Vault

TAG_MAX = 64
LABEL_MAX = 200
RETYPE_FHIR_LIMIT = 64 * 1024 * 1024  # re-typing as FHIR parses the content in memory


def check_tag(tag: str) -> str:
    """A tag as stored: 1 to 64 printable characters without spaces; UsageError otherwise."""
    if not 0 < len(tag) <= TAG_MAX or not tag.isprintable() or any(c.isspace() for c in tag):
        raise UsageError(
            "a tag is 1 to 64 printable characters without spaces", "e.g. --tag cardiology-2026"
        )
    return tag


def retag(
    vault: Vault, record_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> Record:
    """Add and remove tags of one record; tags drive `grant --tag` and `share --tag`."""
    adding = {check_tag(t) for t in add}
    removing = set(remove)

    def change(meta: dict[str, Any], _key: bytes) -> None:
        meta["tags"] = sorted((set(meta.get("tags", [])) | adding) - removing)

    return vault.edit(record_id, change)


def _ndjson_synopsis(content: bytes) -> Synopsis | None:
    """What FHIR NDJSON content holds; None when it is not NDJSON (or holds no resource)."""
    tally = Tally()
    try:
        for line in ndjson.read_lines(io.BytesIO(content)):
            tally.add(line.resource)
    except BadInputError:
        return None
    return tally.synopsis() if tally.counts else None


def _content_kind(vault: Vault, record: Record, record_type: str) -> tuple[str, Synopsis]:
    """(media type, synopsis) of a record's content read as ``record_type``; BadInputError if
    the content is not of that type."""
    with vault.open_plaintext(record.id) as plain:
        if record_type == "fhir":
            if record.size > RETYPE_FHIR_LIMIT:
                raise UsageError("the record is too large to re-type as FHIR", "add it again")
            content = plain.read()
            try:
                resource = jsonutil.loads(content)
            except (ValueError, UnicodeDecodeError):
                resource = _ndjson_synopsis(content)
                if resource is not None:
                    return ndjson.MEDIA_TYPE, resource
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise BadInputError(f"record {record.id} is not FHIR JSON", "keep its type")
            return MEDIA_TYPES["fhir"], synopsis(resource)
        head = plain.read(512)
    if record_type == "pdf":
        if not head.startswith(b"%PDF-"):
            raise BadInputError(f"record {record.id} is not a PDF", "keep its type")
        return MEDIA_TYPES["pdf"], Synopsis()
    if record_type == "image":
        image = detect_image(head)
        if image is None:
            raise BadInputError(f"record {record.id} is not an image we know", "keep its type")
        return image, Synopsis()
    return MEDIA_TYPES["other"], Synopsis()


def edit_record(
    vault: Vault, record_id: str, *, label: str | None = None, record_type: str | None = None
) -> Record:
    """Change a record's label and/or type (checked against its content)."""
    if label is not None and not (0 < len(label) <= LABEL_MAX and label.isprintable()):
        raise UsageError("a label is 1 to 200 printable characters", "e.g. --label 'Blood test'")
    if record_type is not None and record_type not in RECORD_TYPES:
        raise UsageError(
            f"unknown record type {record_type!r}", "use one of: " + ", ".join(RECORD_TYPES)
        )
    found: tuple[str, Synopsis] | None = None
    if record_type is not None:
        found = _content_kind(vault, vault.get(record_id), record_type)

    def change(meta: dict[str, Any], _key: bytes) -> None:
        if label is not None:
            meta["label"] = label
        if record_type is not None and found is not None:
            media_type, summary = found
            meta.update(type=record_type, media_type=media_type, **summary.to_json())

    return vault.edit(record_id, change)
