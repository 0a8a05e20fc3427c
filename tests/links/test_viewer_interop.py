"""Interop: links healthwallet creates are resolved and decrypted by kill-the-clipboard's
SHLViewer in Node, over TLS (test CA via NODE_EXTRA_CA_CERTS): passcode links, single-file
U links, long-term links after an update, and expired and revoked links refused.

Needs node and tests/node/node_modules/kill-the-clipboard: skipped locally without them, a
failure when CI=true.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import link_peers
from conftest import Cli
from shl_server import ServedRelay
from test_ktc_interop import NODE_DIR, require_ktc

from healthwallet.links.payload import LinkPayload, parse_link

relay = link_peers.relay
people = link_peers.people


def view(cases: list[dict[str, Any]], ca: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Run SHLViewer on each case; its result lines."""
    node = require_ktc()
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(cases))
    proc = subprocess.run(
        [node, str(NODE_DIR / "interop" / "shl-view.mjs"), str(cases_file)],
        capture_output=True, cwd=NODE_DIR, timeout=120,
        env={"PATH": "/usr/bin:/bin", "NODE_EXTRA_CA_CERTS": str(ca)},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def _create(patient: Cli, base: str, *args: str | Path) -> str:
    result = patient.ok("link", "create", "--tag", "knee", "--relay", base, "--json", *args)
    return str(json.loads(result.out)["link"])


def test_kill_the_clipboard_reads_links_healthwallet_creates(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path], tmp_path: Path
) -> None:
    routes, ca = relay
    require_ktc()
    patient = people["patient"]
    passcode = tmp_path / "passcode"
    passcode.write_text("4711\n")
    with_code = _create(patient, routes.base, "--passcode-file", passcode, "--label", "Knee")
    single = _create(patient, routes.base, "--single-file", "--viewer", "https://viewer.example/")
    long_term = _create(patient, routes.base, "--long-term")
    revoked = _create(patient, routes.base)
    short = parse_link(_create(patient, routes.base, "--expires", "3s"))
    more = tmp_path / "more.json"
    more.write_text(json.dumps({"resourceType": "Observation", "status": "final",
                                "code": {"text": "ferritin"}}))
    patient.ok("record", "add", more, "--tag", "knee")
    ids = [row["id"] for row in patient.ok("link", "list", "--json").json()["links"]]
    patient.ok("link", "update", ids[2], "--tag", "knee")
    patient.ok("link", "revoke", ids[3])
    # An expired link: same relay entry rules, exp in the past (the relay refuses it too).
    live = parse_link(long_term)
    expired = LinkPayload(live.url, live.key, int(time.time()) - 60, "L").uri()
    # The relay enforces expiry itself: the same link without `exp`, asked after it expired.
    time.sleep(max(0.0, (short.exp or 0) + 1.5 - time.time()))
    expired_at_relay = LinkPayload(short.url, short.key).uri()
    results = view([
        {"uri": with_code, "recipient": "Dr. Okafor", "passcode": "4711"},
        {"uri": with_code, "recipient": "Dr. Okafor", "passcode": "0000"},
        {"uri": single, "recipient": "Dr. Okafor"},
        {"uri": long_term, "recipient": "Dr. Okafor", "embeddedLengthMax": 10},
        {"uri": revoked, "recipient": "Dr. Okafor"},
        {"uri": expired, "recipient": "Dr. Okafor"},
        {"uri": expired_at_relay, "recipient": "Dr. Okafor"},
    ], ca, tmp_path)
    assert results[0]["ok"] and results[0]["label"] == "Knee" and results[0]["flag"] == "P"
    assert results[0]["bundles"] == 2
    assert "Patient" in results[0]["resourceTypes"]
    assert "DocumentReference" in results[0]["resourceTypes"]
    assert results[1] == {"ok": False, "error": "SHLInvalidPasscodeError",
                          "message": "Invalid or missing passcode"}
    assert results[2]["ok"] and results[2]["flag"] == "U" and results[2]["bundles"] == 1
    assert results[3]["ok"] and "Observation" in results[3]["resourceTypes"]
    assert results[3]["bundles"] == 3  # labs, ferritin, the letter: the content after update
    assert results[4]["ok"] is False and results[4]["error"] == "SHLManifestNotFoundError"
    assert results[5]["ok"] is False and results[5]["error"] == "SHLExpiredError"
    assert results[6]["ok"] is False and results[6]["error"] == "SHLManifestNotFoundError"
