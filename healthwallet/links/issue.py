"""Creating and updating links: records → encrypted files → relay → sealed register entry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import keys
from . import content, jwe
from .client import RelayClient
from .payload import LinkPayload, new_key
from .register import LinkRegister

RandomBytes = Callable[[int], bytes]


def seal_files(
    records: Sequence[content.SharedRecord],
    key: bytes,
    *,
    single_file: bool,
    random_bytes: RandomBytes,
) -> list[str]:
    """The link's files: FHIR Bundles as compact JWE under ``key`` (compressed)."""
    return [
        jwe.encrypt(key, plaintext, content.FHIR_JSON, random_bytes)
        for plaintext in content.link_files(records, single_file=single_file)
    ]


@dataclass(frozen=True)
class NewLink:
    """A link just created: its local id and payload."""

    local_id: str
    link: LinkPayload


def create_link(
    client: RelayClient,
    register: LinkRegister,
    records: Sequence[content.SharedRecord],
    record_ids: Sequence[str],
    *,
    flag: str,
    exp: int | None,
    passcode: str | None,
    label: str | None,
    created: str,
    random_bytes: RandomBytes,
) -> NewLink:
    """Upload a new link to the relay and keep it in the register."""
    key = new_key(random_bytes)
    files = seal_files(records, key, single_file="U" in flag, random_bytes=random_bytes)
    made = client.create(files, flag=flag, exp=exp, passcode=passcode)
    link = LinkPayload(made.url, key, exp, flag, label)
    entry: dict[str, Any] = {
        "relay": client.base,
        "link_id": made.link_id,
        "url": made.url,
        "key": keys.b64url(key),
        "exp": exp,
        "flag": flag,
        "label": label,
        "records": list(record_ids),
        "created": created,
        "creator": client.identity.did,
        "revoked": False,
        "updated": None,
    }
    return NewLink(register.add(entry), link)


def payload_of(entry: dict[str, Any]) -> LinkPayload:
    """The payload of a register entry (to show its link again)."""
    return LinkPayload(
        entry["url"], keys.b64url_decode(entry["key"]), entry["exp"], entry["flag"], entry["label"]
    )


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """What `link list` shows of an entry: never the key or the manifest URL."""
    return {
        "id": entry["local_id"],
        "relay": entry["relay"],
        "flag": entry["flag"],
        "exp": entry["exp"],
        "label": entry["label"],
        "records": len(entry["records"]),
        "created": entry["created"],
        "updated": entry.get("updated"),
        "revoked": entry["revoked"],
    }
