#!/usr/bin/env python
"""make bench-first-try: a user's first try on tables against IsolationForest — a thin driver of
:mod:`aelab_tools.first_try` (``--help`` for the options)."""

import sys

from aelab_tools.first_try import main

if __name__ == "__main__":
    sys.exit(main())
