"""``python -m scratchnet.learn``: see `scratchnet.learn.cli`."""
import sys

from .cli import main

sys.exit(main())
