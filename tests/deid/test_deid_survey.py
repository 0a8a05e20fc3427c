"""The Safe Harbor survey: a marker in every identifier kind and location; none leaves."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import Cli, base_env
from leaks import container_text
from survey import survey_bundle
from synth import fixed_now

from healthwallet import shares
from healthwallet.deid import PseudonymKeys, load_policy
from healthwallet.deid._units import time_unit

KEYS = PseudonymKeys.derive(b"survey-secret-0123456789abcdefghij", "study-S")


def found_markers(markers: dict[str, str], text: str) -> list[str]:
    """The markers in `text`, as "kind: location (marker)"."""
    return [f"{where} ({marker})" for marker, where in markers.items() if marker in text]


def numbers(node: Any) -> Iterator[tuple[float, str | None]]:
    """(value, unit) of every Quantity-like object in a JSON tree."""
    if isinstance(node, dict):
        value = node.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            unit = node.get("code") or node.get("unit")
            yield float(value), unit if isinstance(unit, str) else None
        for key, item in node.items():
            if key in ("valueInteger", "valueDecimal") and isinstance(item, int | float):
                yield float(item), None
            yield from numbers(item)
    elif isinstance(node, list):
        for item in node:
            yield from numbers(item)


def ages_over_89(resources: list[dict[str, Any]], planted: list[float]) -> list[float]:
    """Planted ages that still show as a number over 89 years."""
    shown = []
    for value, unit in numbers(resources):
        years = value * (time_unit(unit)[0] if unit and time_unit(unit) else 1.0)
        if value in planted and years > 89:
            shown.append(value)
    return shown


def test_survey_covers_all_18_kinds() -> None:
    _, markers, ages = survey_bundle()
    kinds = {where.split(":", 1)[0] for where in markers.values()}
    assert kinds == {chr(c) for c in range(ord("A"), ord("R") + 1)}
    assert len(markers) > 150 and len(ages) >= 5


def test_safe_harbor_survey_finds_no_marker_in_the_share_dataset() -> None:
    bundle, markers, ages = survey_bundle()
    dataset = shares.prepare_dataset(
        [("0123456789abcdef", json.dumps(bundle).encode())],
        load_policy("safe-harbor"),
        KEYS,
        now=fixed_now(),
    )
    text = dataset.ndjson().decode()
    assert found_markers(markers, text) == []
    assert ages_over_89(dataset.resources, ages) == []
    assert len(dataset.resources) >= 20  # the clinical resources themselves still leave


def test_safe_harbor_survey_through_the_cli_share_file_and_ingested_dataset(
    tmp_path: Path,
) -> None:
    bundle, markers, ages = survey_bundle()

    def wallet(name: str) -> Cli:
        env = base_env(tmp_path) | {
            "HEALTHWALLET_HOME": str(tmp_path / name),
            "HEALTHWALLET_PASSPHRASE": f"{name} passphrase",
        }
        cli = Cli(tmp_path / name, env)
        cli.ok("init", "--keystore", "file")
        return cli

    research, patient = wallet("research"), wallet("patient")
    research.ok("config", "set", "clock-skew-seconds", "0")
    group = research.ok("id").out.strip()
    records = tmp_path / "survey.json"
    records.write_text(json.dumps(bundle))
    patient.ok("record", "add", records, "--label", "survey")
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=www)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/status/"
        patient.ok("config", "set", "status-url", base)
        share_file = tmp_path / "survey.hwshare"
        patient.ok("share", group, "--study", "study-S", "--type", "fhir", "--out", share_file)
        patient.ok("status", "publish", "--out", www / "status")
        _check_share_and_dataset(research, share_file, markers, ages, www / "status")
    finally:
        server.shutdown()
        server.server_close()


def _check_share_and_dataset(
    research: Cli, share_file: Path, markers: dict[str, str], ages: list[float], lists: Path
) -> None:
    # The file as anyone holding it sees it (the decrypted dataset is the one
    # test_safe_harbor_survey_finds_no_marker_in_the_share_dataset checks in process).
    assert found_markers(markers, container_text(share_file.read_bytes())) == []

    # What the research group writes, through the CLI. Where `research ingest` takes the
    # published status lists as files, it gets them (a list on 127.0.0.1 may not be fetched).
    out = lists.parent / "dataset"
    args: list[str | Path] = ["research", "ingest", share_file, "--k", "1", "--study", "study-S"]
    if "--status-list" in research("research", "ingest", "--help").out:
        for published in sorted(lists.glob("*")):
            args += ["--status-list", published]
    research.ok(*args, "--out", out)
    written = [p for p in out.rglob("*.ndjson") if p.is_file()]
    assert written, "research ingest wrote no NDJSON"
    text = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert found_markers(markers, text) == [], "markers in the ingested dataset"
    resources = [json.loads(line) for p in written for line in p.read_text().splitlines()]
    assert ages_over_89(resources, ages) == []
