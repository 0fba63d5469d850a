#!/usr/bin/env python
"""the one-class protocol over the ten digits — a thin driver of :mod:`aelab_tools.one_class` (``--help`` for the options)."""

import sys

from aelab_tools.one_class import main

if __name__ == "__main__":
    sys.exit(main())
