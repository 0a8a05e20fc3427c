"""``python -m healthwallet``."""

from healthwallet.cli import main

main()
