"""What reaches a terminal can't lie: controls, bidi marks and markup from outside are shown
escaped, in human output and in `error:`/`hint:` lines alike (healthwallet/termsafe.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Cli, base_env, fhir_bundle

from healthwallet.termsafe import escape, escape_lines

# Anything a terminal would obey: C0 (but the line feeds we print ourselves), DEL, C1, bidi.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def people(tmp_path: Path) -> dict[str, Cli]:
    out = {}
    for name in ("patient", "doctor", "stranger"):
        env = base_env(tmp_path)
        env["HEALTHWALLET_HOME"] = str(tmp_path / name)
        env["HEALTHWALLET_PASSPHRASE"] = f"{name} passphrase"
        out[name] = Cli(tmp_path / name, env)
        out[name].ok("init", "--keystore", "file")
    return out


def did(cli: Cli) -> str:
    return cli.ok("id").out.strip()


def assert_nothing_raw(*texts: str) -> None:
    for text in texts:
        found = RAW.findall(text)
        assert not found, (found, text)


def test_escape_shows_controls_and_bidi_marks_visibly() -> None:
    assert escape("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert escape("\x00\x07\x08\r\n\t\x7f\x85\x9b") == "\\x00\\x07\\x08\\x0d\\x0a\\x09\\x7f\\x85\\x9b"
    assert escape("invoice\u202efdp.sh") == "invoice\\u202efdp.sh"
    marks = "\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    assert escape(marks) == "".join(f"\\u{ord(c):04x}" for c in marks)
    assert escape("Zoë → ✓ [bold]") == "Zoë → ✓ [bold]"  # printable text is left alone
    assert escape_lines("one\ntwo\x1b") == "one\ntwo\\x1b"


def test_forged_grant_with_escape_sequences_cannot_redraw_verify(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    patient, doctor, stranger = people["patient"], people["doctor"], people["stranger"]
    # The stranger signs a grant of their own whose purpose repaints the screen with a verdict
    # naming the real patient as issuer, hidden behind cursor moves and a bidi override.
    forged_screen = (
        "\x1b[2J\x1b[H\x1b[32m✓ VALID grant\x1b[0m  urn:uuid:0\n"
        f"  issuer      {did(patient)}\r\x1b[1A\u202e [bold]x[/bold] [link=https://evil]y[/link]"
    )
    labs = tmp_path / "labs\x1b[31m\u202e.json"
    labs.write_text(json.dumps(fhir_bundle()))
    stranger.ok("record", "add", labs)
    forged = tmp_path / "forged.hwgrant"
    stranger.ok("grant", did(doctor), "--type", "fhir", "--expires", "1d",
                "--purpose", forged_screen, "--out", forged)

    verified = doctor("verify", forged)
    assert_nothing_raw(verified.out, verified.err)
    issuer_lines = [ln for ln in verified.out.splitlines() if ln.lstrip().startswith("issuer")]
    assert issuer_lines == [f"  issuer      {did(stranger)}"]  # one issuer line: the real one
    purpose = next(line for line in verified.out.splitlines() if line.startswith("  purpose"))
    assert purpose == "  purpose     " + escape(forged_screen)
    assert "[bold]x[/bold] [link=https://evil]y[/link]" in purpose  # markup shown as typed

    opened = doctor("open", forged, "--out", tmp_path / "opened")
    assert_nothing_raw(opened.out, opened.err)
    for command in (("grants",), ("record", "list"), ("log",)):
        shown = stranger(*command)
        assert_nothing_raw(shown.out, shown.err)


def test_research_ingest_report_escapes_the_share_file_names(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    junk = tmp_path / "junk\x1b]8;;https:evil\x07\u2066.hwshare"
    junk.write_bytes(b"not a share")
    report = people["doctor"]("research", "ingest", junk, "--k", "1", "--out", tmp_path / "o")
    assert report.code == 1
    assert_nothing_raw(report.out, report.err)
    assert escape(str(junk)) in report.out


def test_error_and_hint_lines_escape_what_they_quote(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    doctor = people["doctor"]
    share = tmp_path / "x.hwshare"
    share.write_bytes(b"junk")
    unknown = doctor("config", "get", "status\u202e-url\x1b[2J")
    assert unknown.code == 2
    assert_nothing_raw(unknown.out, unknown.err)
    assert unknown.err.startswith("error: unknown setting 'status\\u202e-url\\x1b[2J'")
    missing = doctor("research", "ingest", share, "--k", "1", "--out", tmp_path / "o",
                     "--status-list", "/no/such\x1b[2J\u202elist.json")
    assert missing.code == 3
    assert_nothing_raw(missing.out, missing.err)
    assert missing.err.startswith("error: no status list at /no/such\\x1b[2J\\u202elist.json\n")
    debug = doctor("--debug", "config", "get", "bad\x1b[5m")
    assert debug.code == 2
    assert_nothing_raw(debug.out, debug.err)
