"""Decrypt a share's dataset as a stream of resources, one NDJSON line at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from .. import envelope as env
from .. import keys
from ..deid import parse_fhir_json
from ..errors import BadInputError, VerificationError
from ..shares import ConsentClaims, ShareFile, canonical_json, dataset_keys

_TRUNCATED = "share file is truncated (the dataset is cut short)"
_TRAILING = "share file has data after the dataset"


def _parse_line(line: bytes, number: int) -> tuple[dict[str, Any], bytes]:
    try:
        resource = parse_fhir_json(line)
        return resource, canonical_json(resource)
    except BadInputError as exc:
        raise VerificationError(
            f"the dataset is malformed (line {number}: {exc.message})"
        ) from None
    except ValueError:
        raise VerificationError(
            f"the dataset is malformed (line {number}: NaN or Infinity)"
        ) from None


def stream_dataset(
    share: ShareFile, claims: ConsentClaims, src: Any, identity: keys.Identity
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each resource of the dataset (``src`` at the payload) with its canonical JSON bytes.

    Memory holds one 64 KiB chunk and one line. The resources come before the dataset is
    known to be whole: the caller keeps them aside until the generator ends without an error
    (authenticated end of stream, no trailing bytes, ``datasetDigest``, the consent's resource
    types). VerificationError otherwise.
    """
    record = share.envelope.records[0]
    record_keys = dataset_keys(share, identity)
    digest = hashlib.sha256(share.envelope_bytes)
    reader: Any = env.PayloadReader(src, record.length, digest, "share file", _TRUNCATED)
    buffer = bytearray()
    scan = 0
    number = 0
    types: set[str] = set()
    try:
        for chunk in env.decrypt_record(record_keys, reader):
            buffer += chunk
            start = 0
            while (end := buffer.find(b"\n", scan)) >= 0:
                number += 1
                resource, line = _parse_line(bytes(buffer[start:end]), number)
                types.add(str(resource["resourceType"]))
                yield resource, line
                start = scan = end + 1
            del buffer[:start]
            scan = len(buffer)
    except VerificationError as exc:
        if exc.message.startswith("the dataset is malformed"):
            raise
        raise VerificationError("the dataset failed authentication") from None
    if buffer:
        raise VerificationError("the dataset is malformed (it does not end with a newline)")
    env.expect_end(src, "share file", _TRAILING)
    if digest.hexdigest() != claims.dataset_digest:
        raise VerificationError("dataset digest does not match the consent")
    if not number or types != set(claims.categories):
        raise VerificationError("the dataset's resource types differ from the consent's")
