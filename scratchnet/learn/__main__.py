"""``python -m scratchnet.learn``: see :mod:`scratchnet.learn.cli`."""
import sys

from .cli import main

sys.exit(main())
