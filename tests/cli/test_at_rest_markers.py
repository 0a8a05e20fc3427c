"""At rest, a copy of the wallet home shows record counts, sizes and order, nothing a user typed.

Each value a user can set is a unique marker, set through the real CLI; every file of the home
(SQLite journals, WAL and freed pages included: the whole file is read) is then searched for
each marker as raw text, hex, base64 (every alignment) and UTF-16. The only plain places are the
ones docs/threat-model.md names, for values that are public by design.

``tests/vectors/v1-home`` is a wallet home written by healthwallet before metadata was sealed
(commit d0f6815, format v1: plain audit log and grant register), made through the CLI with the
passphrase of the ``cli`` fixture: a record, a grant, a research share, a key rotation, a second
grant and a revocation. Its markers start with ``v1``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import Cli, fhir_bundle

from healthwallet.keys import Identity

V1_HOME = Path(__file__).resolve().parent.parent / "vectors" / "v1-home"
V1_MARKERS = {
    "recipient": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
    "research recipient": "did:key:z6MkehRgf7yJbgaGfYsdoAsKdBPE3dj2CYhowQdcjqSJgvVd",
    "purpose": "v1purposemarker",
    "share purpose": "v1sharepurposemarker",
    "study": "v1studymarker",
    "expiry": "2027-01-02T03:04:05",
    "label": "v1labelmarker",
    "tag": "v1tagmarker",
    "file name": "v1filemarker",
}


def _b64_fragments(raw: bytes) -> list[bytes]:
    """The base64 (standard and url-safe) text that ``raw`` gives at each of the 3 alignments."""
    fragments = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        start = 4 if pad else 0  # the first group mixes in the padding bytes
        fragment = encoded[start:-4]  # the last group may mix in what follows
        fragments += [fragment, fragment.replace(b"+", b"-").replace(b"/", b"_")]
    return fragments


def encodings(marker: str) -> list[bytes]:
    """Every form in which ``marker`` could sit in a file."""
    raw = marker.encode("utf-8")
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        marker.encode("utf-16-le"),
        marker.encode("utf-16-be"),
        *_b64_fragments(raw),
    ]


def places(home: Path, markers: dict[str, str]) -> dict[str, set[str]]:
    """For each marker found, the files (relative to ``home``) that hold it in any form."""
    found: dict[str, set[str]] = {}
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for field, marker in markers.items():
            if any(form in data for form in encodings(marker)):
                found.setdefault(field, set()).add(str(path.relative_to(home)))
    return found


def token(field: str) -> str:
    return f"{field}{uuid.uuid4().hex[:16]}"


def test_every_value_a_user_sets_is_sealed_at_rest(wallet: Cli, tmp_path: Path) -> None:
    doctor = Identity(os.urandom(32)).did
    research = Identity(os.urandom(32)).did
    expiry = (datetime.now(UTC) + timedelta(days=40)).replace(microsecond=0)
    expiry = expiry.replace(second=17, minute=43)
    share_expiry = expiry + timedelta(days=1, seconds=7)
    markers = {
        "recipient": doctor,
        "research recipient": research,
        "purpose": token("purpose"),
        "share purpose": token("sharepurpose"),
        "study": token("NCT"),
        "expiry": expiry.strftime("%Y-%m-%dT%H:%M:%S"),
        "share expiry": share_expiry.strftime("%Y-%m-%dT%H:%M:%S"),
        "label": token("label"),
        "tag": token("tag"),
        "file name": token("file"),
        "removed label": token("gone"),
        "record type": "application/fhir+json",
        "data category": "Condition",
        "status url": f"https://{token('status')}.example/lists/",
        "did web": f"did:web:{token('didweb')}.example",
        "ledger url": f"https://{token('rpc')}.example/",
    }
    bundle = fhir_bundle()
    bundle["entry"].append({"resource": {"resourceType": "Condition", "id": "c1",
                                         "code": {"text": "asthma"}}})
    record_file = tmp_path / f"{markers['file name']}.json"
    record_file.write_text(json.dumps(bundle))
    wallet.ok("config", "set", "status-url", markers["status url"])
    wallet.ok("config", "set", "did-web", markers["did web"])
    wallet.ok("config", "set", "ethereum.rpc-url", markers["ledger url"])
    added = wallet.ok("record", "add", record_file, "--label", markers["label"],
                      "--tag", markers["tag"], "--json").json()["records"]
    gone = wallet.ok("record", "add", record_file, "--label", markers["removed label"],
                     "--allow-duplicate", "--json").json()["records"][0]["id"]
    wallet.ok("record", "rm", gone)
    record_id = added[0]["id"]
    grant = wallet.ok("grant", doctor, "--record", record_id, "--purpose", markers["purpose"],
                      "--expires", expiry.isoformat(), "--out", tmp_path / "g.hwgrant",
                      "--json").json()
    share = wallet.ok("share", research, "--study", markers["study"], "--record", record_id,
                      "--purpose", markers["share purpose"], "--expires",
                      share_expiry.isoformat(), "--out", tmp_path / "s.hwshare",
                      "--json").json()
    assert "Condition" in share["categories"]
    wallet.ok("revoke", grant["grant_id"])
    wallet.ok("anchor")
    wallet.ok("backup", "--out", tmp_path / "w.hwbackup")
    wallet.ok("doctor")

    found = places(wallet.home, markers)
    # Public by design (docs/threat-model.md, "At rest"): settings, and the status lists that
    # are hosted at the status URL (and list that URL in the register of lists).
    # (a consent's per-study list has a random name: status/<32 hex>.json)
    status_url_places = found.pop("status url", set())
    assert all(place in {"config.json", "grants.sqlite"}
               or (place.startswith("status/") and place.endswith(".json"))
               for place in status_url_places), status_url_places
    assert found.pop("did web", set()) <= {"config.json"}
    assert found.pop("ledger url", set()) <= {"config.json"}
    assert found == {}

    # What is sealed still reads back, for the one who holds the seed.
    listed = {g["grant_id"]: g for g in wallet.ok("grants", "--json").json()["grants"]}
    assert listed[grant["grant_id"]]["recipient"] == doctor
    assert listed[grant["grant_id"]]["status"] == "revoked"
    assert listed[share["share_id"]]["kind"] == "consent"
    assert listed[share["share_id"]]["expires"] == share_expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    log = wallet.ok("log", "--json").json()
    assert log["ok"] is True
    shared = next(e for e in log["entries"] if e["event"] == "share.issued")
    assert shared["details"]["study"] == markers["study"]
    assert "Condition" in shared["details"]["categories"]


def _copy_v1_home(wallet_home: Path) -> None:
    shutil.copytree(V1_HOME, wallet_home)
    for path in [wallet_home, *wallet_home.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)


def test_v1_home_is_sealed_on_first_unlock(cli: Cli) -> None:
    _copy_v1_home(cli.home)
    before = places(cli.home, V1_MARKERS)
    assert {"audit.log", "grants.sqlite"} <= set().union(*before.values())

    cli.ok("record", "list")  # any unlock seals
    assert places(cli.home, V1_MARKERS) == {}
    assert stat.S_IMODE((cli.home / "audit.log").stat().st_mode) == 0o600

    grants = cli.ok("grants", "--json").json()["grants"]
    assert [(g["kind"], g["recipient"], g["status"]) for g in grants] == [
        ("grant", V1_MARKERS["recipient"], "revoked"),
        ("consent", V1_MARKERS["research recipient"], "active"),
        ("grant", V1_MARKERS["recipient"], "active"),
    ]
    assert grants[0]["expires"] == V1_MARKERS["expiry"] + "Z"
    log = cli.ok("log", "--json").json()
    assert log["ok"] is True
    events = [e["event"] for e in log["entries"]]
    assert events[-1] == "audit.sealed" and log["entries"][-1]["details"]["v1_ok"] is True
    shared = next(e for e in log["entries"] if e["event"] == "share.issued")
    assert shared["details"]["study"] == V1_MARKERS["study"]

    # The sealed register keeps working: a grant of the retired key is revoked and logged.
    cli.ok("revoke", grants[2]["grant_id"])
    assert [g["status"] for g in cli.ok("grants", "--json").json()["grants"]] == [
        "revoked", "active", "revoked"]
    assert cli.ok("log", "--json").json()["entries"][-1]["event"] == "grant.revoked"
    assert places(cli.home, V1_MARKERS) == {}
