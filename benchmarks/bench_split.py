"""Duplicate detection and splitting: what they cost next to a plain add, measured in one run.

Run: .venv/bin/python benchmarks/bench_split.py [--quick]
Targets (issue 11), each a ratio against a baseline measured in the same run:
- adding with the duplicate gate keeps >= 50% of a plain add's throughput: the gate is one
  more HMAC-SHA-256 pass beside the SHA-256 commitment and the encryption (measured 0.64 on a
  shared 2-core machine; hashing it in a second thread gained nothing measurable there);
- splitting an NDJSON export by patient streams: its peak RSS above the interpreter's baseline
  stays under a quarter of the file's size (the file is never held whole).
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import best_of, peak_rss_of, report

from healthwallet import dedupe
from healthwallet.keys import Identity
from healthwallet.vault import Vault

QUICK = "--quick" in sys.argv
MIB = 1024 * 1024


def gate_overhead(work: Path) -> dict[str, float]:
    size = (64 if QUICK else 256) * MIB
    source = work / "big.bin"
    block = os.urandom(MIB)
    with source.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(block)
    key = Identity(os.urandom(32)).vault_key
    vault = Vault(work / "home", key)
    vault.initialize()
    plain_s = best_of(lambda: vault.add(source), 3)
    gated_s = best_of(lambda: vault.add(source, gate=dedupe.Gate(key, allow=True)), 3)
    vault.close()
    source.unlink()
    return {
        "size_mib": size / MIB,
        "plain_add_mib_s": size / MIB / plain_s,
        "gated_add_mib_s": size / MIB / gated_s,
        "gated_vs_plain": plain_s / gated_s,
    }


def _export(path: Path, size: int, patients: int) -> int:
    rng = random.Random(11)
    lines = 0
    with path.open("w") as handle:
        for p in range(patients):
            handle.write(json.dumps({"resourceType": "Patient", "id": f"p{p}"}) + "\n")
        while handle.tell() < size:
            p = rng.randrange(patients)
            observation = {
                "resourceType": "Observation",
                "id": f"o{lines}",
                "status": "final",
                "subject": {"reference": f"Patient/p{p}"},
                "code": {"text": "Hemoglobin"},
                "effectiveDateTime": f"2026-{1 + lines % 12:02d}-01",
                "valueQuantity": {"value": rng.uniform(10, 17), "unit": "g/dL"},
            }
            handle.write(json.dumps(observation) + "\n")
            lines += 1
    return lines


def split_memory(work: Path) -> dict[str, float]:
    size = (48 if QUICK else 512) * MIB
    source = work / "export.ndjson"
    lines = _export(source, size, patients=200)
    root = str(Path(__file__).resolve().parents[1])
    child = (
        f"import sys, os; sys.path.insert(0, {root!r});"
        "from pathlib import Path; from healthwallet.vault import Vault;"
        "from healthwallet.recordsplit import add_split;"
        f"k = os.urandom(32); v = Vault(Path({str(work / 'split-home')!r}), k); v.initialize();"
        f"r = add_split(v, k, Path({str(source)!r}), 'patient'); assert len(r.added) == 200"
    )
    split_rss = peak_rss_of([sys.executable, "-c", child])
    baseline_rss = peak_rss_of(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r}); "
         "import healthwallet.recordsplit"]
    )
    source.unlink()
    return {
        "file_mib": size / MIB,
        "lines": lines,
        "split_peak_rss_mib": split_rss / MIB,
        "interpreter_baseline_rss_mib": baseline_rss / MIB,
        "above_baseline_vs_file": (split_rss - baseline_rss) / size,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report("dedupe_gate", gate_overhead(work))
        report("split_ndjson_by_patient", split_memory(work))


if __name__ == "__main__":
    main()
