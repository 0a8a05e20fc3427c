"""`healthwallet completion SHELL`: the script that lets bash, zsh or fish complete commands."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ..errors import UsageError

COMPLETE_VAR = "_HEALTHWALLET_COMPLETE"

# Each script asks healthwallet itself for the candidates through COMPLETE_VAR (the protocol
# of typer/click shell completion), so they stay right as commands change.
_SCRIPTS = {
    "bash": """_healthwallet_completion() {
    local IFS=$'\\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \\
                   _HEALTHWALLET_COMPLETE=complete_bash $1 ) )
    return 0
}
complete -o default -F _healthwallet_completion healthwallet
""",
    "zsh": """#compdef healthwallet
_healthwallet_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _HEALTHWALLET_COMPLETE=complete_zsh healthwallet)
}
compdef _healthwallet_completion healthwallet
""",
    "fish": """complete --command healthwallet --no-files --arguments \\
  "(env _HEALTHWALLET_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) healthwallet)" \\
  --condition \\
  "env _HEALTHWALLET_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=is-args _TYPER_COMPLETE_ARGS=(commandline -cp) healthwallet"
""",
}


def completing() -> bool:
    """True when a shell is asking for completions; registers the shells typer knows."""
    if not os.environ.get(COMPLETE_VAR):
        return False
    from typer._completion_classes import completion_init  # typer pinned in pyproject.toml

    completion_init()
    return True


def cmd_completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.")],
) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Example: healthwallet completion bash >> ~/.bashrc
    """
    script = _SCRIPTS.get(shell)
    if script is None:
        raise UsageError(f"no completion for shell {shell!r}", "use bash, zsh or fish")
    sys.stdout.write(script)


def register(app: typer.Typer) -> None:
    """Attach this command to the app."""
    app.command("completion")(cmd_completion)
