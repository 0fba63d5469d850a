#!/usr/bin/env python
"""Mean ± std of every metric across runs — a thin driver of :mod:`aelab.tools.aggregate`."""

import sys

from aelab.tools.aggregate import main

if __name__ == "__main__":
    sys.exit(main())
