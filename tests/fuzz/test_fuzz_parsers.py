"""Class: no parser crashes, hangs or exits 70 on mutated or generated input (in-process).

Each test feeds one parser the real files the CLI wrote (see conftest.py), damaged by
Hypothesis (mutate.py), and accepts only success or an error of the project's family with a
documented exit code, within a bounded time per input.
"""

from __future__ import annotations

import io
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from healthwallet import (
    backup,
    didweb,
    grants,
    jsonutil,
    keystore,
    shares,
    statuslist,
    vault,
    wallet,
)
from healthwallet.backup import BackupKey
from healthwallet.deid import load_policy
from healthwallet.keys import Identity
from healthwallet.settings import int_setting
from healthwallet.shares import StatusLists, prepare_dataset, pseudonym_keys

from .conftest import BACKUP_PASSPHRASE, PASSPHRASE, Corpus, examples
from .mutate import JSON_VALUES, expect_documented, framed_file, json_file, mutated_bytes

NOW = datetime.now(UTC)
GRANT_MAGIC = b"healthwallet-grant/v1\n"
SHARE_MAGIC = b"healthwallet-share/v1\n"


@st.composite
def grant_files(draw: st.DrawFn, corpus: Corpus) -> bytes:
    seed = draw(st.sampled_from([corpus.grant_ldp, corpus.grant_jwt]))
    return draw(framed_file(seed, GRANT_MAGIC))


def test_fuzz_grant_file_verify(corpus: Corpus) -> None:
    @settings(max_examples=examples(100))
    @given(grant_files(corpus))
    def run(data: bytes) -> None:
        expect_documented(lambda: grants.verify_grant(
            io.BytesIO(data), status_source=str(corpus.status_list_path), now=NOW,
            recipient_did=corpus.doctor_did))

    run()


def test_fuzz_share_file_verify(corpus: Corpus) -> None:
    lists = StatusLists([str(corpus.share_status_list_path)])

    @settings(max_examples=examples(100))
    @given(framed_file(corpus.share, SHARE_MAGIC))
    def run(data: bytes) -> None:
        expect_documented(lambda: shares.verify_share(
            io.BytesIO(data), recipient_did=corpus.research_did, status=lists, now=NOW))

    run()


def test_fuzz_backup_file_restore(corpus: Corpus) -> None:
    @settings(max_examples=examples(30))
    @given(framed_file(corpus.backup, backup.MAGIC))
    def run(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "b.hwbackup"
            src.write_bytes(data)
            expect_documented(lambda: backup.restore_backup(
                src, Path(tmp) / "restored", BackupKey(passphrase=BACKUP_PASSPHRASE),
                keystore="file", keystore_passphrase=lambda new: PASSPHRASE))

    run()


def test_fuzz_status_list_document(corpus: Corpus) -> None:
    entry = _status_entry(corpus)

    @settings(max_examples=examples(100))
    @given(json_file(corpus.status_list))
    def run(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "1.json"
            path.write_bytes(data)

            def check() -> bool:
                document = statuslist.load_status_list_credential(str(path))
                shares._list_identity(document)
                return statuslist.check_status(entry, document, corpus.patient_did)

            expect_documented(check)

    run()


def _status_entry(corpus: Corpus) -> dict[str, object]:
    start = len(GRANT_MAGIC)
    length = int.from_bytes(corpus.grant_ldp[start : start + 4], "big")
    header = json.loads(corpus.grant_ldp[start + 4 : start + 4 + length])
    status: dict[str, object] = header["credential"]["credentialStatus"]
    return status


def test_fuzz_did_document(corpus: Corpus) -> None:
    did = "did:web:clinic.example:staff:lee"

    @settings(max_examples=examples(120))
    @given(json_file(corpus.did_document))
    def run(data: bytes) -> None:
        expect_documented(lambda: didweb.key_agreement_of(jsonutil.loads(data), did))

    run()


def test_fuzz_fhir_input_to_deidentification(corpus: Corpus) -> None:
    policy = load_policy("safe-harbor")
    keys = pseudonym_keys(Identity(bytes(32)), "S1")

    @settings(max_examples=examples(120))
    @given(json_file(corpus.fhir))
    def run(data: bytes) -> None:
        expect_documented(lambda: prepare_dataset([("r1", data)], policy, keys, now=NOW))
        expect_documented(lambda: shares.parse_ndjson(data + b"\n"))
        with tempfile.TemporaryDirectory() as tmp:  # what `record add` reads first
            path = Path(tmp) / "input.json"
            path.write_bytes(data)
            expect_documented(lambda: vault.detect_type(path, None))
            expect_documented(lambda: vault.detect_type(path, "fhir"))

    run()


def test_fuzz_config_and_wallet_files(corpus: Corpus) -> None:
    @settings(max_examples=examples(120))
    @given(st.sampled_from(["config.json", "wallet.json"]).flatmap(
        lambda name: st.tuples(st.just(name), json_file(
            corpus.config_json if name == "config.json" else corpus.wallet_json))))
    def run(case: tuple[str, bytes]) -> None:
        name, data = case
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            (home / name).write_bytes(data)
            if name == "config.json":
                config = expect_documented(lambda: wallet.read_config(home))
                if config is not None:  # what was accepted must be usable as documented
                    for key in ("max-expiry-days", "clock-skew-seconds"):
                        int_setting(config, key, 0)
                expect_documented(lambda: wallet.set_config(home, "ledger", "local"))
            else:
                expect_documented(lambda: wallet.read_info(home))

    run()


def test_fuzz_identity_key(corpus: Corpus) -> None:
    @settings(max_examples=examples(100))
    @given(json_file(corpus.identity_key))
    def run(data: bytes) -> None:
        expect_documented(lambda: keystore.open_seed_file(data, PASSPHRASE))

    run()


@settings(max_examples=examples(120))
@given(st.one_of(JSON_VALUES.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64),
                 mutated_bytes(b'{"a": [1, 2.5, "x", null, true], "b": {"c": -0.0}}')))
def test_fuzz_json_loader_refuses_only_with_bad_input(data: bytes) -> None:
    try:
        jsonutil.loads(data, max_bytes=1 << 16)
    except jsonutil.JsonInputError as exc:
        assert exc.exit_code == 2
