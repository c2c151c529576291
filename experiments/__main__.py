"""``python -m experiments``: the same as the ``experiments`` command."""

import sys

from .cli.main import bare_main

if __name__ == "__main__":
    sys.exit(bare_main())
