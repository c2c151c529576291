"""``python -m experiments.worker``: how every task starts the worker."""

import sys

from .build import main

sys.exit(main())
