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
