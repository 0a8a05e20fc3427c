"""Merkle benchmark: root + every inclusion proof for 100,000 commitments, and verifying one.

Run: .venv/bin/python benchmarks/bench_merkle.py [--n 100000] [--repeat 7]
Prints JSON. Every ratio compares figures measured in this same run. Timings are the
best of ``--repeat`` interleaved runs (least disturbed by other load on the machine).

"Root and all proofs" is what the anchor store computes and keeps for a batch: the root and
every tree node a proof can need (any leaf's proof is then log2(n) lookups). Writing each
leaf's whole path out as bytes (n * log2(n) hashes) is reported beside it for comparison.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import platform
import random
import time
from collections.abc import Callable
from typing import Any

from healthwallet.anchors import PROOF_TYPE, PROOF_VERSION, TREE_ALGORITHM, proof_problems
from healthwallet.ledger.merkle import MerkleBatch, leaf_hash, verify_inclusion

TARGET_RATIO = 3.0
TARGET_VERIFY_MS = 0.1


def timed(action: Callable[[], Any]) -> float:
    """Seconds one call takes; its result is freed only after the clock stops."""
    gc.collect()
    start = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--verify-samples", type=int, default=2_000)
    args = parser.parse_args()

    commitments = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(args.n)]
    sha256 = hashlib.sha256

    def baseline() -> list[bytes]:
        return [sha256(c).digest() for c in commitments]

    def tree_only() -> bytes:
        return MerkleBatch(commitments).root

    def root_and_all_proofs() -> tuple[bytes, list[tuple[int, int, bytes]]]:
        # What the anchor store does per batch: the root, and every node a proof can need
        # (each leaf's proof is then log2(n) lookups, see merkle.audit_path_from).
        batch = MerkleBatch(commitments)
        return batch.root, list(batch.inner_nodes())

    def every_path_as_bytes() -> tuple[bytes, list[bytes]]:
        # Writing each leaf's whole path out (n * log2(n) hashes): what the store used to keep.
        batch = MerkleBatch(commitments)
        return batch.root, batch.audit_path_blobs()

    runs: dict[str, list[float]] = {
        "baseline": [],
        "tree_only": [],
        "root_and_all_proofs": [],
        "every_path_as_bytes": [],
    }
    for _ in range(args.repeat):
        runs["baseline"].append(timed(baseline))
        runs["tree_only"].append(timed(tree_only))
        runs["root_and_all_proofs"].append(timed(root_and_all_proofs))
        runs["every_path_as_bytes"].append(timed(every_path_as_bytes))
    best = {name: min(values) for name, values in runs.items()}

    # Verifying one proof, as a verifier holds it: the leaf hash, index, size, path, root.
    batch = MerkleBatch(commitments)
    rng = random.Random(9162)
    samples = []
    for index in rng.sample(range(args.n), min(args.verify_samples, args.n)):
        samples.append((index, batch.audit_path(index)))
    root = batch.root
    size = args.n
    per_proof = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for index, path in samples:
            if not verify_inclusion(leaf_hash(commitments[index]), index, size, path, root):
                raise SystemExit("a proof failed to verify")
        per_proof.append((time.perf_counter() - start) / len(samples))
    verify_ms = min(per_proof) * 1000

    # The same, from a portable JSON proof (hex parsing, shape and receipt checks). The
    # receipt is an ethereum one, so no signature check is involved.
    portable = []
    for index, path in samples[:200]:
        receipt = {
            "version": 1,
            "ledger": "ethereum",
            "root": root.hex(),
            "details": {"chain_id": 1, "tx_hash": "0x" + "00" * 32, "sender": "0x" + "00" * 20},
        }
        proof = {
            "type": PROOF_TYPE,
            "version": PROOF_VERSION,
            "tree": TREE_ALGORITHM,
            "record": f"rec-{index}",
            "commitment": commitments[index].hex(),
            "leaf_index": index,
            "tree_size": size,
            "audit_path": [h.hex() for h in path],
            "root": root.hex(),
            "ledger": "ethereum",
            "receipt": receipt,
            "anchored_at": None,
        }
        portable.append((proof, commitments[index].hex()))
    per_portable = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for proof, commitment in portable:
            if proof_problems(proof, commitment):
                raise SystemExit("a portable proof failed to verify")
        per_portable.append((time.perf_counter() - start) / len(portable))
    portable_ms = min(per_portable) * 1000

    ratio = best["root_and_all_proofs"] / best["baseline"]
    report = {
        "n": args.n,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "baseline_hash_each_leaf_once_s": round(best["baseline"], 5),
        "tree_root_and_all_nodes_s": round(best["tree_only"], 5),
        "root_and_all_proofs_s": round(best["root_and_all_proofs"], 5),
        "ratio_tree_only_vs_baseline": round(best["tree_only"] / best["baseline"], 3),
        "ratio_root_and_all_proofs_vs_baseline": round(ratio, 3),
        "every_path_as_bytes_s": round(best["every_path_as_bytes"], 5),
        "ratio_every_path_as_bytes_vs_baseline": round(
            best["every_path_as_bytes"] / best["baseline"], 3
        ),
        "target_ratio": TARGET_RATIO,
        "audit_path_length_max": max(len(p) for _, p in samples),
        "verify_one_proof_ms": round(verify_ms, 5),
        "verify_one_portable_json_proof_ms": round(portable_ms, 5),
        "target_verify_ms": TARGET_VERIFY_MS,
        "meets_ratio_target": ratio <= TARGET_RATIO,
        "meets_verify_target": verify_ms < TARGET_VERIFY_MS,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
