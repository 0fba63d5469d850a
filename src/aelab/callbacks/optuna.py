"""The callback of an Optuna trial: reports the validation metric to the study every epoch and prunes.

:mod:`aelab.search` (the sweeper) adds it to each trial's ``callbacks``; nothing else in a run knows about
Optuna, and Optuna is imported only when a trial runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytorch_lightning as pl

from aelab.errors import SearchSpaceError


class OptunaTrialCallback(pl.Callback):
    """Report ``metric`` to the Optuna trial after every validation and stop the run when it should be pruned.

    Rank 0 talks to the study; its decision is broadcast so every DDP rank stops together. When the pruner
    stopped the run, ``optuna.TrialPruned`` is raised as fitting ends (the folder is then marked ``PRUNED``,
    and no test runs). The sweeper reads the trial's objective — its best reported value — from the study.

    Args:
        storage, study_name, trial_id: where the running trial lives.
        metric: a logged validation metric, e.g. ``val/loss``.
        direction: ``minimize`` or ``maximize``.
        pruner: the sweeper's pruner config as JSON (a study keeps no pruner in its storage).
    """

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_id: int,
        metric: str,
        direction: str,
        pruner: str | None = None,
    ) -> None:
        self.storage, self.study_name, self.trial_id, self.pruner = storage, study_name, int(trial_id), pruner
        self.metric, self.direction = metric, direction
        self.best: float | None = None
        self.pruned_at: int | None = None
        self._trial = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._trial = load_trial(self.storage, self.study_name, self.trial_id, self.pruner)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.metric not in trainer.callback_metrics:
            raise SearchSpaceError(
                f"hydra.sweeper.metric={self.metric!r} is not logged by this run; logged: "
                f"{sorted(k for k in trainer.callback_metrics if k.startswith('val/'))}"
            )
        value = float(trainer.callback_metrics[self.metric])
        if math.isfinite(value):
            better = self.best is None or (
                value < self.best if self.direction == "minimize" else value > self.best
            )
            self.best = value if better else self.best
        prune = False
        if trainer.is_global_zero and self._trial is not None:
            self._trial.report(value, step=trainer.current_epoch)
            prune = self._trial.should_prune()
        prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pruned_at is not None:
            import optuna

            raise optuna.TrialPruned(f"pruned after epoch {self.pruned_at} ({self.metric}={self.best})")


def open_storage(url: str):
    """An Optuna storage for an RDB URL or ``journal:<file>``."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url.split(":", 1)[1]))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        # workers sharing the file wait for each other's writes (sqlite3's default is 5 s)
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url)


def load_trial(storage: str, study_name: str, trial_id: int, pruner: str | None = None):
    """The running trial ``trial_id`` of a study, for a trial process that reports to it.

    ``pruner`` is the sweeper's pruner config as JSON (a study keeps no pruner in its storage; each process
    that asks ``should_prune`` needs the configured one).
    """
    import optuna
    from hydra.utils import instantiate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(
            study_name=study_name,
            storage=open_storage(storage),
            pruner=instantiate(json.loads(pruner)) if pruner else optuna.pruners.NopPruner(),
        )
    except Exception as err:  # noqa: BLE001
        raise SearchSpaceError(
            f"trial {trial_id}: cannot reach study {study_name!r} in {storage!r}: {err}"
        ) from None
    return optuna.trial.Trial(study, trial_id)
