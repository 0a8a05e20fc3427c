"""What kind of file a record is (FHIR JSON or NDJSON, PDF, image, other), checked on add."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import jsonutil
from .errors import BadInputError, NotFoundError, UsageError
from .fhir import Synopsis, ndjson, synopsis

RECORD_TYPES = ("fhir", "pdf", "image", "other")
FHIR_PARSE_LIMIT = 512 * 1024 * 1024

MEDIA_TYPES = {
    "fhir": "application/fhir+json",
    "pdf": "application/pdf",
    "other": "application/octet-stream",
}
_IMAGE_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
]


def detect_image(head: bytes) -> str | None:
    """The media type of an image (or DICOM) from its first bytes; None if not one."""
    for magic, media_type in _IMAGE_MAGIC:
        if head.startswith(magic):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "application/dicom"
    return None


def _fhir_synopsis(path: Path, claimed: bool) -> tuple[str, Synopsis] | None:
    """(media type, what it holds) when ``path`` is FHIR JSON or FHIR NDJSON; None if it is
    not (BadInputError if claimed). NDJSON is read line by line, so its size is not capped."""
    if path.suffix.lower() == ndjson.SUFFIX or ndjson.looks_like_ndjson(path):
        return ndjson.MEDIA_TYPE, ndjson.summarize(path)
    size = path.stat().st_size
    if size > FHIR_PARSE_LIMIT:
        if claimed:
            raise BadInputError("the FHIR file is too large to check", "split the Bundle")
        return None
    try:
        resource = jsonutil.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        if claimed:
            raise BadInputError(
                "a file given as --type fhir is not JSON",
                "FHIR records must be FHIR R4 JSON; use --type other for anything else",
            ) from None
        return None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        if claimed:
            raise BadInputError(
                "a file given as --type fhir has no resourceType",
                "FHIR records must be FHIR R4 JSON resources or Bundles",
            )
        return None
    return MEDIA_TYPES["fhir"], synopsis(resource)


def detect_type(path: Path, claimed: str | None) -> tuple[str, str, Synopsis]:
    """(type, media type, what it holds) of a file, checking a claimed type where it matters."""
    if claimed is not None and claimed not in RECORD_TYPES:
        raise UsageError(
            f"unknown record type {claimed!r}", "use one of: " + ", ".join(RECORD_TYPES)
        )
    with path.open("rb") as handle:
        head = handle.read(512)
    image = detect_image(head)
    if claimed == "fhir" or (
        claimed is None and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    ):
        found = _fhir_synopsis(path, claimed == "fhir")
        if found is not None:
            return "fhir", found[0], found[1]
    if claimed == "pdf" or (claimed is None and head.startswith(b"%PDF-")):
        return "pdf", MEDIA_TYPES["pdf"], Synopsis()
    if claimed == "image" or (claimed is None and image):
        return "image", image or "application/octet-stream", Synopsis()
    if head.lstrip().startswith(b"{") and claimed is None:
        return "other", "application/json", Synopsis()
    return "other", MEDIA_TYPES["other"], Synopsis()


def check_input_file(path: Path) -> None:
    """Refuse missing files, directories and unreadable files before any work starts."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NotFoundError(
            "an input file does not exist", f"check the path: {path.name}"
        ) from None
    except OSError as exc:
        raise BadInputError(f"cannot read an input file ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInputError("an input is a directory, not a file", "pass the files inside it")
    if not os.access(path, os.R_OK):
        raise BadInputError("an input file is not readable", "check its permissions")
