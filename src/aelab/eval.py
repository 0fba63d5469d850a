"""``python -m aelab.eval``: the same as ``aelab-eval`` (:mod:`aelab.cli.eval`; the work is in
:func:`aelab.pipeline.evaluate`)."""

from aelab.cli.eval import main
from aelab.pipeline import default_ood_for, evaluate

__all__ = ["default_ood_for", "evaluate", "main"]

if __name__ == "__main__":
    main()
