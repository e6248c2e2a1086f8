"""``python -m ssdops``: the ``ssdops`` command (see :mod:`ssdops.tools.cli`)."""
import sys

from .tools.cli import main

if __name__ == "__main__":  # not when imported (for example by pytest's doctest collection)
    sys.exit(main())
