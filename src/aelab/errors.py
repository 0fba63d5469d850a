"""The errors aelab raises for input a user can fix.

Every such error is one line that names the file, folder or key and the fix. They derive from Hydra's
``CompactHydraException``, so the command line prints the message alone (no traceback) and exits non-zero;
``HYDRA_FULL_ERROR=1`` shows the traceback. Each also derives from the built-in type that says what kind of
problem it is (``ValueError``, ``FileNotFoundError``, ``RuntimeError``), so callers can catch it as such.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException


class AelabError(CompactHydraException):
    """Base of the refusals: bad config values, untrusted or broken files, missing or unreadable data."""


class ConfigError(AelabError, ValueError):
    """A config value that cannot work; the message names the key, the value and an override that fixes it."""


class UntrustedFileError(AelabError, ValueError):
    """A file handed to aelab was refused: not the expected format, or it asks for something unsafe."""


class MissingDataError(AelabError, FileNotFoundError):
    """Data files or folders that are not where the config says; the message names them and how to get them."""


class DataError(AelabError, RuntimeError):
    """Data that exists but cannot be used (truncated, corrupt, not an image, too small); names the file."""


class DivergenceError(AelabError, FloatingPointError):
    """A loss became NaN or infinite: the run stops with the step, the epoch and the fixes."""


class DeviceError(AelabError, RuntimeError):
    """The configured trainer cannot run on this machine (``trainer=gpu`` without a GPU, ...)."""


def divergence_message(what: str, step: int | None = None, epoch: int | None = None) -> str:
    """The line a diverged run stops with: what happened, where, and the fixes."""
    where = f"by step {step} (epoch {epoch})" if step is not None else ""
    return (
        f"training diverged: {what} {where}. Lower the learning rate (optimizer.lr=...), clip gradients "
        "(trainer.gradient_clip_val=1.0) or check the input range; the checkpoints of the last finite epoch are kept "
        "and no non-finite checkpoint or metric was written"
    )


class SearchSpaceError(ValueError):
    """A search space, metric or storage of an Optuna sweep that cannot work; the message names it and the fix."""


def refusal_line(prog: str, err: BaseException) -> str:
    """The one line a refusal prints: ``prog: error: <message>``."""
    return f"{prog}: error: {err}"


def exit_with_one_line(prog: str, err: AelabError) -> None:
    """Print ``prog: error: <message>`` to stderr and exit 2 — unless ``HYDRA_FULL_ERROR=1`` asks for the
    traceback or the job is one of a ``-m`` sweep (then the error propagates: Hydra's sweepers and launchers record
    failed jobs, an Optuna study marks the trial failed)."""
    import os
    import sys

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return
    print(refusal_line(prog, err), file=sys.stderr)
    raise SystemExit(2) from None


__all__ = [
    "AelabError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "DivergenceError",
    "MissingDataError",
    "SearchSpaceError",
    "UntrustedFileError",
    "divergence_message",
    "exit_with_one_line",
]
