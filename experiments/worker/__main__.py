"""``python -m experiments.worker``: how every task starts the worker (``--serve``: the local
backend's pool of long-lived workers)."""

import sys

from .entry import main

sys.exit(main())
