#!/usr/bin/env python
"""make results: train every model's best experiment, evaluate, write docs/RESULTS.md — a thin driver of :mod:`aelab_tools.results` (``--help`` for the options)."""

import sys

from aelab_tools.results import main

if __name__ == "__main__":
    sys.exit(main())
