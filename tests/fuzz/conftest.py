"""Fuzz suite set-up: Hypothesis profiles and real files made once by the real CLI.

Profiles (choose with HYPOTHESIS_PROFILE): ``ci`` (the default: derandomized, so every run
tries the same inputs; sized for `make test`) and ``long`` (random, many more examples;
`make fuzz`). ``FUZZ_SCALE`` multiplies the example counts of either.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Cli, base_env, fhir_bundle
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # time is bounded by the tests' own per-input limit (see mutate.py)
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("ci", derandomize=True, max_examples=40, **_COMMON)
settings.register_profile("long", derandomize=False, max_examples=1000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def examples(ci: int) -> int:
    """Examples for one test: ``ci`` in the ci profile, 25× that in the long one."""
    base = ci if PROFILE == "ci" else ci * 25
    return max(1, int(base * SCALE))


PASSPHRASE = "correct horse battery staple"
BACKUP_PASSPHRASE = "backup pass phrase"


@dataclass(frozen=True)
class Corpus:
    """Real files made by the CLI: the seeds every mutation starts from."""

    root: Path
    patient: Cli
    doctor: Cli
    research: Cli
    doctor_did: str
    research_did: str
    patient_did: str
    grant_ldp: bytes
    grant_jwt: bytes
    share: bytes
    backup: bytes
    status_list: bytes
    status_list_path: Path
    share_status_list_path: Path  # the consent's per-study list
    did_document: bytes
    wallet_json: bytes
    config_json: bytes
    identity_key: bytes
    fhir: bytes


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("fuzz-corpus")
    env = base_env(root)
    env["HEALTHWALLET_PASSPHRASE"] = PASSPHRASE
    env["HEALTHWALLET_BACKUP_PASSPHRASE"] = BACKUP_PASSPHRASE

    def person(name: str) -> Cli:
        cli = Cli(root / name, dict(env, HEALTHWALLET_HOME=str(root / name)))
        cli.ok("init", "--keystore", "file")
        return cli

    patient, doctor, research = person("patient"), person("doctor"), person("research")
    dids = {name: cli.ok("id").out.strip() for name, cli in
            (("patient", patient), ("doctor", doctor), ("research", research))}
    fhir = json.dumps(fhir_bundle()).encode()
    (root / "labs.json").write_bytes(fhir)
    patient.ok("record", "add", root / "labs.json")
    patient.ok("config", "set", "max-expiry-days", "400")
    for fmt in ("ldp", "jwt"):
        patient.ok("grant", dids["doctor"], "--type", "fhir", "--expires", "300d",
                   "--format", fmt, "--out", root / f"grant-{fmt}.hwgrant")
    # A consent needs a hostable status location; the list is handed to ingest by path.
    patient.ok("config", "set", "status-url", "https://status.invalid/hw/")
    patient.ok("share", dids["research"], "--study", "S1", "--type", "fhir",
               "--expires", "300d", "--out", root / "s.hwshare")
    patient.ok("status", "publish", "--out", root / "status")
    share_list = next(p for p in sorted((root / "status").glob("*.json")) if p.name != "1.json")
    patient.ok("backup", "--out", root / "b.hwbackup", "--passphrase")
    doctor.ok("config", "set", "did-web", "did:web:clinic.example:staff:lee")
    did_document = doctor.ok("id", "--did-document").out.encode()
    return Corpus(
        root=root, patient=patient, doctor=doctor, research=research,
        doctor_did=dids["doctor"], research_did=dids["research"], patient_did=dids["patient"],
        grant_ldp=(root / "grant-ldp.hwgrant").read_bytes(),
        grant_jwt=(root / "grant-jwt.hwgrant").read_bytes(),
        share=(root / "s.hwshare").read_bytes(),
        backup=(root / "b.hwbackup").read_bytes(),
        status_list=(root / "status" / "1.json").read_bytes(),
        status_list_path=root / "status" / "1.json",
        share_status_list_path=share_list,
        did_document=did_document,
        wallet_json=(root / "patient" / "wallet.json").read_bytes(),
        config_json=(root / "patient" / "config.json").read_bytes(),
        identity_key=(root / "patient" / "identity.key").read_bytes(),
        fhir=fhir,
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many inputs each fuzz test ran, by exit code (0: accepted)."""
    from .mutate import RUNS

    if not RUNS:
        return
    tests: dict[str, dict[int, int]] = {}
    for (test, code), count in RUNS.items():
        tests.setdefault(test, {})[code] = count
    terminalreporter.write_sep("-", f"fuzz inputs (profile {PROFILE}, scale {SCALE})")
    for test, codes in sorted(tests.items()):
        detail = ", ".join(f"exit {code}: {n}" for code, n in sorted(codes.items()))
        terminalreporter.write_line(f"{test}: {sum(codes.values())} ({detail})")
    terminalreporter.write_line(f"total: {sum(RUNS.values())} inputs")
