#!/usr/bin/env python
"""Mean ± std of every metric across runs — a thin driver of :mod:`aelab_tools.aggregate`."""

import sys

from aelab_tools.aggregate import main

if __name__ == "__main__":
    sys.exit(main())
