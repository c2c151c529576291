"""``python -m experiments.worker``: how every task starts the worker."""

import sys

from .main import main

sys.exit(main())
