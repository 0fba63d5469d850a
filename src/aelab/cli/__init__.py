"""aelab's command lines, thin: each parses its arguments, calls :mod:`aelab.pipeline` (or a codec), and reports a
refusal — a wrong override, a broken or untrusted file, missing data — as one line (``prog: error: ...``, exit 2;
``HYDRA_FULL_ERROR=1`` shows the traceback).

``aelab-train`` (:mod:`.train`), ``aelab-eval`` (:mod:`.eval`), ``aelab-compress`` / ``aelab-decompress``
(:mod:`.compress`); ``python -m aelab.train`` / ``aelab.eval`` / ``aelab.compress`` run the same.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from aelab.errors import AelabError, exit_with_one_line, refusal_line


def one_line(prog: str, fn, *args) -> Any:
    """``fn(*args)`` for a Hydra entry point: a refusal prints one line and exits 2 (but propagates in a ``-m``
    sweep, whose launcher records the failed job, and with ``HYDRA_FULL_ERROR=1``)."""
    try:
        return fn(*args)
    except AelabError as err:
        exit_with_one_line(prog, err)
        raise


def returns_code(
    prog: str,
    catch: tuple[type[BaseException], ...] = (AelabError, FileNotFoundError, ValueError, RuntimeError),
):
    """Decorate an argparse command ``fn(argv) -> int``: a refused or broken input prints one line and returns 2."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(argv: list[str] | None = None) -> int:
            try:
                return fn(argv)
            except catch as err:
                print(refusal_line(prog, err), file=sys.stderr)
                return 2

        return wrapper

    return decorate


def checkpoint_parser() -> argparse.ArgumentParser:
    """The arguments every command that reads a checkpoint shares (an argparse parent): ``--batch-size``,
    ``--device``, ``--trust``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass")
    p.add_argument("--device", default="cpu", help="where the model runs (cpu, cuda, cuda:1)")
    p.add_argument(
        "--trust", action="append", default=[], help="trust this module prefix's classes (repeatable)"
    )
    return p
