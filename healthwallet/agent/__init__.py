"""The opt-in unlock agent: keystore keys held in memory behind a private Unix socket."""
