"""Entry point of the agent process (started by `healthwallet unlock`)."""

import sys

from .process import main

sys.exit(main(sys.argv[1:]))
