"""`healthwallet unlock` and `healthwallet lock`: the opt-in unlock agent (docs/cli.md)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import EXIT_KEYSTORE, UsageError
from ._common import JsonOption, emit, home, passphrase_source

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_FOR = "15m"


def _seconds(text: str) -> int:
    from ..agent.server import MAX_SECONDS
    from ..timeutil import parse_duration

    duration = parse_duration(text)
    if duration is None or not 1 <= duration.total_seconds() <= MAX_SECONDS:
        raise UsageError(
            f"--for {text.strip()} is not a duration between 1s and {MAX_SECONDS // 3600}h",
            "write it like 90s, 15m or 2h",
        )
    return int(duration.total_seconds())


def _spelled(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s"]
    return "".join(p for p in parts if p) if secs else "".join(p for p in parts[:2] if p)


def _socket() -> Any:
    from ..agent.location import socket_path

    path = socket_path(home(), os.environ)
    if path is None:
        raise UsageError(
            "the unlock agent is turned off (HEALTHWALLET_AGENT_SOCK is set but empty)",
            "unset HEALTHWALLET_AGENT_SOCK, or set it to a socket path",
        )
    return path


def cmd_unlock(
    for_: Annotated[
        str,
        typer.Option("--for", metavar="DURATION", help="How long to stay unlocked (at most 12h)."),
    ] = DEFAULT_FOR,
    status: Annotated[
        bool, typer.Option("--status", help="Only say whether the wallet is unlocked (exit 0/4).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Unlock a file-keystore wallet for a while, so commands skip the passphrase.

    Asks for the passphrase once, then hands the key derived from it to a small agent process
    of yours that holds it in memory until the time is up or `healthwallet lock`.

    Example: healthwallet unlock --for 30m
    """
    from ..agent.client import AgentClient, AgentError
    from ..agent.session import derive_unlock_key, wallet_key_id

    path = _socket()
    if status:
        key_id = wallet_key_id(home())
        payload: dict[str, Any] = {"unlocked": False, "seconds_left": None, "agent_pid": None}
        try:
            state = AgentClient(path).status()
            if key_id in state.seconds_left:
                payload = {
                    "unlocked": True,
                    "seconds_left": state.seconds_left[key_id],
                    "agent_pid": state.pid,
                    "memory_locked": state.memory_locked,
                }
        except AgentError:
            pass

        def human_status(out: Console) -> None:
            if payload["unlocked"]:
                out.print(
                    f"unlocked for {_spelled(payload['seconds_left'])} more "
                    f"(agent pid {payload['agent_pid']})"
                )
            else:
                out.print("locked: commands ask for the passphrase")

        emit(as_json, payload, human_status, data=True)
        if not payload["unlocked"]:
            raise typer.Exit(EXIT_KEYSTORE)
        return
    seconds = _seconds(for_)
    key_id, key = derive_unlock_key(home(), passphrase_source())
    from ..agent.launch import connect_or_start

    client = connect_or_start(path)
    client.add(key_id, key, seconds)
    del key
    until = (datetime.now() + timedelta(seconds=seconds)).astimezone()
    payload = {
        "unlocked": True,
        "seconds_left": seconds,
        "until": until.isoformat(timespec="seconds"),
    }
    emit(
        as_json,
        payload,
        lambda out: out.print(
            f"Unlocked for {_spelled(seconds)}, until {until:%H:%M:%S}: commands on this wallet "
            "skip the passphrase. Run `healthwallet lock` when you are done."
        ),
    )


def cmd_lock(as_json: JsonOption = False) -> None:
    """Make the agent forget the key now and stop; commands ask for the passphrase again.

    Example: healthwallet lock
    """
    from ..agent.client import AgentClient, AgentNotRunningError

    try:
        forgotten = AgentClient(_socket()).lock()
        running = True
    except AgentNotRunningError:
        forgotten, running = 0, False
    emit(
        as_json,
        {"locked": True, "agent_was_running": running, "keys_forgotten": forgotten},
        lambda out: out.print(
            "Locked: the agent forgot the key and stopped."
            if running
            else "Already locked: no agent is running for this wallet."
        ),
    )


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.command("unlock")(cmd_unlock)
    app.command("lock")(cmd_lock)
