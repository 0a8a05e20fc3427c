"""Class: the real CLI ends every damaged input and odd argument with a documented exit code.

Fewer examples than the in-process tests (each is a process): damaged grant, share, backup,
status list, config and wallet files, and generated arguments, through `python -m healthwallet`.
Only documented exit codes, an ``error:``/``hint:`` pair on failure, no traceback, bounded time.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from conftest import Cli, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import Corpus, examples
from .mutate import RUNS, framed_file, json_file

GRANT_MAGIC = b"healthwallet-grant/v1\n"
SHARE_MAGIC = b"healthwallet-share/v1\n"
BACKUP_MAGIC = b"healthwallet-backup/v1\n"
CLI_SECONDS = 90.0


def assert_clean(result: Result, started: float) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
    RUNS[test, result.code] += 1
    assert result.code in (0, 1, 2, 3, 4, 5), result
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    if result.code == 1 and result.out.strip():
        pass  # a verdict (verify, research ingest): every check is shown on stdout
    elif result.code:
        lines = result.err.strip().splitlines()
        assert lines and lines[-1].startswith("hint: "), result.err
        assert any(line.startswith("error: ") for line in lines), result.err
    assert time.monotonic() - started < CLI_SECONDS


def run(cli: Cli, *args: str | Path) -> None:
    started = time.monotonic()
    assert_clean(cli(*args, timeout=CLI_SECONDS), started)


FILE_KINDS = ["grant", "share", "backup", "status"]


def test_fuzz_cli_damaged_files(corpus: Corpus) -> None:
    strategies = {
        "grant": framed_file(corpus.grant_ldp, GRANT_MAGIC),
        "share": framed_file(corpus.share, SHARE_MAGIC),
        "backup": framed_file(corpus.backup, BACKUP_MAGIC),
        "status": json_file(corpus.status_list),
    }

    @settings(max_examples=examples(12))
    @given(st.sampled_from(FILE_KINDS).flatmap(lambda k: st.tuples(st.just(k), strategies[k])))
    def check(case: tuple[str, bytes]) -> None:
        kind, data = case
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"input.{kind}"
            path.write_bytes(data)
            if kind == "grant":
                run(corpus.doctor, "open", path, "--out", Path(tmp) / "out", "--status-list",
                    corpus.status_list_path)
            elif kind == "share":
                run(corpus.research, "research", "ingest", path, "--k", "1", "--status-list",
                    corpus.share_status_list_path, "--out", Path(tmp) / "out")
            elif kind == "backup":
                run(corpus.research, "--home", Path(tmp) / "restored", "restore", path,
                    "--keystore", "file", "--json")
            else:
                run(corpus.doctor, "verify", corpus.root / "grant-ldp.hwgrant", "--status-list",
                    path)

    check()


def test_fuzz_cli_damaged_home_files(corpus: Corpus) -> None:
    @settings(max_examples=examples(8))
    @given(st.sampled_from(["config.json", "wallet.json", "identity.key"]).flatmap(
        lambda name: st.tuples(st.just(name), json_file(
            {"config.json": corpus.config_json, "wallet.json": corpus.wallet_json,
             "identity.key": corpus.identity_key}[name]))))
    def check(case: tuple[str, bytes]) -> None:
        name, data = case
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            home.mkdir()
            for file in ("wallet.json", "config.json", "identity.key"):
                (home / file).write_bytes((corpus.root / "patient" / file).read_bytes())
            (home / name).write_bytes(data)
            run(corpus.patient, "--home", home, "grant", corpus.doctor_did, "--type", "fhir",
                "--expires", "7d", "--out", Path(tmp) / "g.hwgrant")

    check()


ARG_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                   max_size=40)


def test_fuzz_cli_arguments(corpus: Corpus) -> None:
    templates = [
        lambda a, b: ("grant", a, "--type", "fhir", "--expires", b, "--out", "-"),
        lambda a, b: ("config", "set", a, b),
        lambda a, b: ("verify", str(corpus.root / "grant-ldp.hwgrant"), "--at", a),
        lambda a, b: ("record", "show", a, "--out", "-"),
        lambda a, b: ("revoke", a),
        lambda a, b: ("share", corpus.research_did, "--study", a, "--type", "fhir",
                      "--expires", b, "--dry-run"),
        lambda a, b: ("research", "ingest", str(corpus.root / "s.hwshare"), "--k", a,
                      "--quasi", b, "--out", "/nonexistent-dir/x"),
    ]

    @settings(max_examples=examples(8))
    @given(st.integers(0, len(templates) - 1), ARG_TEXT, ARG_TEXT)
    def check(which: int, a: str, b: str) -> None:
        args = templates[which](a, b)
        started = time.monotonic()
        assert_clean(corpus.patient(*args, timeout=CLI_SECONDS), started)

    check()
