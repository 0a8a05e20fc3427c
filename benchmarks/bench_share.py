"""Benchmark: building shares and ingesting them, in process (no CLI start-up).

1. share: de-identify one synthetic patient's Bundle (15 resources) and write the share file
   (NDJSON, secretstream encryption, consent signed with didkit), against de-identification
   alone: what packaging and signing add per patient.
2. ingest: verify, decrypt and merge N patients' shares (each consent's proof, its status list
   fetched from a file and verified, the dataset digest), k-anonymize and write the dataset.

Run:  .venv/bin/python benchmarks/bench_share.py [--patients 100] [--repeat 5]
Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "deid"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import best_of, report, self_peak_rss  # noqa: E402
from synth import make_patient  # noqa: E402

from healthwallet import research, shares  # noqa: E402
from healthwallet.deid import load_policy  # noqa: E402
from healthwallet.issued import IssuedGrants, Reservation  # noqa: E402
from healthwallet.keys import Identity  # noqa: E402

RESEARCH = Identity(hashlib.sha256(b"bench-research").digest())
NOW = datetime.now(UTC).replace(microsecond=0)
EXPIRES = NOW + timedelta(days=30)
STUDY = "bench-study"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    policy = load_policy("safe-harbor")
    rng = random.Random(2026)
    people = [
        make_patient(
            rng,
            gender=rng.choice(["female", "male"]),
            age=rng.choice([30, 50, 70]),
            zip5=rng.choice(["02139", "97205"]),
            old_address=False,
        )
        for _ in range(args.patients)
    ]
    work = Path(tempfile.mkdtemp(prefix="bench-share-"))

    # 1. one patient's share
    identity = Identity(hashlib.sha256(b"bench-patient-0").digest())
    record = [("0" * 16, json.dumps(people[0].bundle).encode())]
    keys = shares.pseudonym_keys(identity, STUDY)
    registry = IssuedGrants(work / "p0", identity)
    reservation = registry.reserve(RESEARCH.did, EXPIRES)

    def issue(out: BinaryIO, patient: Identity, dataset: shares.Dataset, slot: Reservation) -> None:
        shares.issue_share(
            out,
            patient,
            RESEARCH.did,
            dataset,
            study=STUDY,
            purpose="bench",
            policy=policy,
            expires=EXPIRES,
            credential_status=slot.entry,
            now=NOW,
            share_id=slot.grant_id,
        )

    def deid_only() -> None:
        shares.prepare_dataset(record, policy, keys, now=NOW)

    def full_share() -> None:
        issue(
            io.BytesIO(),
            identity,
            shares.prepare_dataset(record, policy, keys, now=NOW),
            reservation,
        )

    full_share()  # warm up didkit
    deid_s = best_of(deid_only, args.repeat)
    share_s = best_of(full_share, args.repeat)

    # 2. ingest N patients' shares
    files = []
    for number, person in enumerate(people):
        patient = Identity(hashlib.sha256(f"bench-patient-{number}".encode()).digest())
        home = work / f"p{number}"
        reg = IssuedGrants(home, patient)
        slot = reg.reserve(RESEARCH.did, EXPIRES)
        dataset = shares.prepare_dataset(
            [("0" * 16, json.dumps(person.bundle).encode())],
            policy,
            shares.pseudonym_keys(patient, STUDY),
            now=NOW,
        )
        path = work / f"p{number}.hwshare"
        with path.open("wb") as out:
            issue(out, patient, dataset, slot)
        reg.confirm_consent(slot, STUDY)
        files.append(path)
    runs = iter(range(10**6))
    # Each patient's list as a research group types it: a consent's file:// list is never read.
    lists = [str(next((work / f"p{n}" / "status").glob("*.json"))) for n in range(len(files))]

    def ingest() -> None:
        result = research.ingest(
            files, RESEARCH, work / f"out-{next(runs)}", k=5, now=NOW, status_sources=lists
        )
        assert result.accepted == len(files)

    ingest_s = best_of(ingest, max(1, args.repeat // 2))
    shutil.rmtree(work, ignore_errors=True)
    report(
        "share",
        {
            "patients": args.patients,
            "resources_per_patient": 15,
            "deidentify_one_patient_ms": round(deid_s * 1000, 2),
            "share_one_patient_ms": round(share_s * 1000, 2),
            "packaging_and_signing_ms": round((share_s - deid_s) * 1000, 2),
            "ingest_total_s": round(ingest_s, 3),
            "ingest_per_share_ms": round(ingest_s / len(files) * 1000, 2),
            "peak_rss_mib": round(self_peak_rss() / 2**20, 1),
        },
    )


if __name__ == "__main__":
    main()
