"""`link create|list|revoke|log|update` and `import`, end to end against a relay over TLS."""

from __future__ import annotations

import json
from pathlib import Path

import link_peers
from conftest import Cli
from shl_server import Reply, ServedRelay, https_server

from healthwallet.links.payload import parse_link

relay = link_peers.relay
people = link_peers.people


def _create(patient: Cli, relay: ServedRelay, *args: str | Path) -> dict[str, object]:
    result = patient.ok("link", "create", "--tag", "knee", "--relay", relay.base, "--json", *args)
    return json.loads(result.out)


def _passcode(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"passcode-{len(text)}-{text[:3]}"
    path.write_text(text + "\n")
    return path


def test_a_passcode_link_is_imported_by_the_doctor(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path], tmp_path: Path
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes, "--passcode-file", _passcode(tmp_path, "4711"),
                      "--label", "Knee, 2024", "--expires", "7d")
    link = parse_link(str(created["link"]))
    assert link.flag == "P" and link.label == "Knee, 2024" and link.exp is not None
    assert len(link.url) <= 128
    result = people["doctor"]("import", created["link"], "--recipient", "Dr. Okafor",
                              "--passcode-file", _passcode(tmp_path, "4711"), "--json")
    assert result.code == 0, result.err
    imported = result.json()["records"]
    assert [r["kind"] for r in imported] == ["fhir", "fhir"]  # labs Bundle, documents Bundle
    listing = people["doctor"].ok("record", "list", "--json").json()
    assert {r["label"] for r in listing["records"]} == {"Knee, 2024"}
    log = people["patient"].ok("link", "log", str(created["id"])[:6], "--json").json()
    assert [e["recipient"] for e in log["log"]] == ["Dr. Okafor"]


def test_wrong_passcode_says_how_many_attempts_are_left(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path], tmp_path: Path
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes, "--passcode-file", _passcode(tmp_path, "4711"))
    result = people["doctor"]("import", created["link"], "--recipient", "Dr. Okafor",
                              "--passcode-file", _passcode(tmp_path, "1234"))
    assert result.code == 1
    assert "(HTTP 401); 9 attempt(s) left" in result.err
    assert "hint:" in result.err


def test_revoked_link_is_refused_at_once(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path]
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes)
    people["patient"].ok("link", "revoke", str(created["id"]))
    result = people["doctor"]("import", created["link"], "--recipient", "Dr. Okafor")
    assert result.code == 3
    assert "unknown, expired, revoked or used up (HTTP 404)" in result.err
    listing = people["patient"].ok("link", "list", "--json").json()["links"]
    assert [row["revoked"] for row in listing] == [True]


def test_single_file_link_is_fetched_with_get(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path]
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes, "--single-file")
    assert parse_link(str(created["link"])).flag == "U"
    result = people["doctor"]("import", created["link"], "--recipient", "Dr. Okafor", "--json")
    assert result.code == 0, result.err
    assert len(result.json()["records"]) == 1


def test_single_file_with_a_passcode_is_refused_before_anything_is_sent(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path], tmp_path: Path
) -> None:
    routes, _ = relay
    result = people["patient"]("link", "create", "--tag", "knee", "--relay", routes.base,
                               "--single-file", "--passcode-file", _passcode(tmp_path, "4711"))
    assert result.code == 2
    assert "flag U with P" in result.err
    assert people["patient"].ok("link", "list", "--json").json()["links"] == []


def test_long_term_link_serves_new_content_after_update(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path], tmp_path: Path
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes, "--long-term")
    more = tmp_path / "more.json"
    more.write_text(json.dumps({"resourceType": "Observation", "status": "final",
                                "code": {"text": "ferritin"}}))
    people["patient"].ok("record", "add", more, "--tag", "knee")
    people["patient"].ok("link", "update", str(created["id"]), "--tag", "knee")
    result = people["doctor"]("import", created["link"], "--recipient", "Dr. Okafor", "--json")
    assert result.code == 0, result.err
    assert len(result.json()["records"]) == 3


def test_update_of_a_link_that_is_not_long_term_is_refused(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path]
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes)
    result = people["patient"]("link", "update", str(created["id"]))
    assert result.code == 2
    assert "only a long-term link" in result.err


def test_link_key_is_not_readable_in_the_wallet_home(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path]
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes, "--label", "Knee, 2024")
    link = parse_link(str(created["link"]))
    key_text = str(link.to_json()["key"]).encode()
    for path in people["patient"].home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert key_text not in content and link.key not in content, path
            assert b"Knee, 2024" not in content, path
    listing = people["patient"].ok("link", "list", "--json").out
    assert key_text.decode() not in listing and link.url not in listing


def test_qr_code_is_written_as_png_or_svg_and_drawn_in_the_terminal(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path], tmp_path: Path
) -> None:
    routes, _ = relay
    _create(people["patient"], routes, "--qr", tmp_path / "knee.png")
    assert (tmp_path / "knee.png").read_bytes().startswith(b"\x89PNG")
    _create(people["patient"], routes, "--qr", tmp_path / "knee.svg")
    assert b"<svg" in (tmp_path / "knee.svg").read_bytes()
    shown = people["patient"].ok("link", "create", "--tag", "knee", "--relay", routes.base,
                                 "--viewer", "https://viewer.example/")
    assert "▀" in shown.out or "▄" in shown.out
    assert "https://viewer.example/#shlink:/" in shown.out
    bad = people["patient"]("link", "create", "--tag", "knee", "--relay", routes.base,
                            "--qr", tmp_path / "knee.gif")
    assert bad.code == 2 and "PNG or SVG" in bad.err


def test_hostile_relay_log_entries_cannot_redraw_the_terminal(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    """A relay is a server: its answers are escaped like any other outside text."""
    link_id = "C" * 43
    state: dict[str, str] = {}

    def hostile(method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        if method == "POST" and target == "/api/v1/links":
            answer = {"id": link_id, "url": f"{state['base']}m/{link_id}"}
            return 201, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        entries = [{"at": 1_700_000_000, "recipient": "\x1b[2J\x1b[31mDr. Evil\u202e",
                    "outcome": "ok\x07"}]
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"id": link_id, "entries": entries}).encode()

    with https_server(hostile, tmp_path / "hostile") as (base, ca):
        state["base"] = base
        env = {"SSL_CERT_FILE": str(ca)}
        made = people["patient"].ok("link", "create", "--tag", "knee", "--relay", base,
                                    "--json", env=env).json()
        shown = people["patient"].ok("link", "log", str(made["id"]), env=env)
    assert "\x1b" not in shown.out and "\u202e" not in shown.out and "\x07" not in shown.out
    assert "Dr. Evil" in shown.out


def test_passcode_link_without_a_passcode_or_terminal_is_refused(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path], tmp_path: Path
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes, "--passcode-file", _passcode(tmp_path, "4711"))
    result = people["doctor"]("import", created["link"], "--recipient", "Dr. Okafor")
    assert result.code == 2
    assert "needs a passcode" in result.err


def test_a_moved_register_row_does_not_open(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path]
) -> None:
    import sqlite3

    routes, _ = relay
    _create(people["patient"], routes)
    _create(people["patient"], routes)
    db = sqlite3.connect(people["patient"].home / "links.sqlite")
    (first, _), (_, moved) = db.execute("SELECT id, sealed FROM links ORDER BY seq").fetchall()
    db.execute("UPDATE links SET sealed = ? WHERE id = ?", (moved, first))
    db.commit()
    db.close()
    result = people["patient"]("link", "list")
    assert result.code == 1
    assert "link register row in the wallet home was changed" in result.err


def test_link_events_are_in_the_audit_log_without_labels_or_keys(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path]
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes, "--long-term", "--label", "Knee, 2024")
    people["patient"].ok("link", "update", str(created["id"]))
    people["patient"].ok("link", "revoke", str(created["id"]))
    log = people["patient"].ok("log", "--json").out
    events = [e["event"] for e in json.loads(log)["entries"]]
    assert events[-3:] == ["link.created", "link.updated", "link.revoked"]
    assert "Knee, 2024" not in log
    assert str(parse_link(str(created["link"])).to_json()["key"]) not in log


def test_a_link_made_before_a_key_rotation_is_still_managed_by_its_creator_key(
    people: dict[str, Cli], relay: tuple[ServedRelay, Path]
) -> None:
    routes, _ = relay
    created = _create(people["patient"], routes)
    people["patient"].ok("key", "rotate", "--json")
    people["patient"].ok("link", "revoke", str(created["id"]))
    result = people["doctor"]("import", created["link"], "--recipient", "Dr. Okafor")
    assert result.code == 3
