"""A new user's first commands: init says what to do next; a guessable passphrase is refused."""

from __future__ import annotations

from conftest import Cli


def test_init_names_the_phrase_export_and_backup_commands(cli: Cli) -> None:
    result = cli.ok("init", "--keystore", "file")
    assert "write down your recovery phrase:  healthwallet key export --phrase" in result.out
    assert "keep an encrypted backup:         healthwallet backup --out wallet.hwbackup" in result.out


def test_a_trivially_guessable_file_keystore_passphrase_is_refused(cli: Cli) -> None:
    result = cli("init", "--keystore", "file", env={"HEALTHWALLET_PASSPHRASE": "password"})
    assert result.code == 2
    assert result.err.startswith("error: the passphrase is too easy to guess")
    assert "--allow-weak-passphrase" in result.err
    assert not (cli.home / "identity.key").exists()


def test_a_weak_passphrase_is_accepted_when_confirmed_explicitly(cli: Cli) -> None:
    result = cli("init", "--keystore", "file", "--allow-weak-passphrase", "--json",
                 env={"HEALTHWALLET_PASSPHRASE": "password"})
    assert result.code == 0, result
    assert cli("id", env={"HEALTHWALLET_PASSPHRASE": "password"}).code == 0


def test_a_strong_passphrase_needs_no_confirmation(cli: Cli) -> None:
    assert cli("init", "--keystore", "file",
               env={"HEALTHWALLET_PASSPHRASE": "ochre lantern quietly unfolds"}).code == 0


def test_unlocking_an_existing_wallet_never_judges_the_passphrase(cli: Cli) -> None:
    cli.ok("init", "--keystore", "file", "--allow-weak-passphrase",
           env={"HEALTHWALLET_PASSPHRASE": "hunter2"})
    assert cli("doctor", env={"HEALTHWALLET_PASSPHRASE": "hunter2"}).code == 0


def _readme_first_session() -> list[str]:
    """The command lines of the README's "A first session" block, as written."""
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A first session", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    lines = []
    for raw in block.group(1).splitlines():
        command = raw.split("  #", 1)[0].strip()
        if command and not command.startswith("#"):
            lines.append(command)
    return lines


def test_the_readme_first_session_works_as_written(cli: Cli, tmp_path) -> None:
    """Runs the README's first session, filling in only what the README leaves to the reader
    (the record id prefix and the doctor's DID), in a folder holding labs.json and scan.pdf."""
    import json
    import shlex

    from conftest import fhir_bundle

    (tmp_path / "labs.json").write_text(json.dumps(fhir_bundle()))
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4\n% scan\n%%EOF\n")
    doctor = Cli(tmp_path / "doctor", dict(cli.env, HEALTHWALLET_HOME=str(tmp_path / "doctor"),
                                           HEALTHWALLET_PASSPHRASE="doctor passphrase here"))
    doctor.ok("init", "--keystore", "file")
    doctor_did = doctor.ok("id").out.strip()
    runner = cli
    lines = _readme_first_session()
    assert lines[0].startswith("healthwallet init") and any("verify" in line for line in lines)
    for line in lines:
        if line.startswith("healthwallet verify"):
            runner = doctor  # "the doctor, in their own wallet"
        words = shlex.split(line)[1:]
        if words[:2] == ["record", "show"]:
            listed = cli.ok("record", "list", "--json").json()["records"]
            words[2] = next(r["id"] for r in listed if r["label"] == "labs.json")[:4]
        if words[:1] == ["grant"]:
            assert words[1].startswith("did:key:z6Mk…")
            words[1] = doctor_did
        if words[:1] == ["init"]:
            words.append("--keystore=file")  # no OS keyring in this test's environment
        result = runner(*words, cwd=tmp_path)
        assert result.code == 0, (line, result)
    assert (tmp_path / "from-patient").is_dir()
    assert (tmp_path / "labs-copy.json").read_bytes() == (tmp_path / "labs.json").read_bytes()
