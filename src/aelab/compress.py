"""``python -m aelab.compress``: the same as ``aelab-compress`` (:mod:`aelab.cli.compress`)."""

import sys

from aelab.cli.compress import compress, decompress

__all__ = ["compress", "decompress"]

if __name__ == "__main__":
    sys.exit(compress())
