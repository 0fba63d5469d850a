#!/usr/bin/env python
"""make bench-kinds: how fast the data kinds beyond images train and evaluate — a thin driver of :mod:`aelab_tools.kinds_bench` (``--help`` for the options)."""

import sys

from aelab_tools.kinds_bench import main

if __name__ == "__main__":
    sys.exit(main())
