#!/usr/bin/env python
"""make bench: seconds per epoch, plain PyTorch loop vs aelab — a thin driver of :mod:`aelab_tools.benchmark` (``--help`` for the options)."""

import sys

from aelab_tools.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
