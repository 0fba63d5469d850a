"""``python -m aelab.train``: the same as ``aelab-train`` (:mod:`aelab.cli.train`; the work is in
:mod:`aelab.pipeline`). DDP children start through this path."""

from aelab.cli.train import main
from aelab.pipeline import resume, run_job, train

__all__ = ["main", "resume", "run_job", "train"]

if __name__ == "__main__":
    main()
