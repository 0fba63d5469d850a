"""``hydra/sweeper=optuna``: the Hydra side of :mod:`aelab.search` (Optuna ≥ 4, pruning, shared RDB storage)."""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class AelabOptunaSweeper(Sweeper):
    """Run an Optuna study whose trials are Hydra jobs of the configured launcher.

    Args:
        params: the search space, ``{config path: {type, low, high, log} | {type: categorical, choices}}``.
        metric: the validation metric the study optimizes (the best value of each trial).
        direction: ``minimize`` or ``maximize``.
        n_trials: trials this invocation runs (a continued study grows by this many).
        n_jobs: trials launched together (in parallel with the submitit launchers).
        storage: an RDB URL or ``journal:<file>``; ``null`` is ``sqlite:///<sweep dir>/optuna.db``.
        study_name: ``null`` is the sweep folder's name.
        sampler, pruner: Optuna objects (instantiated by Hydra from their ``_target_``); ``null``: Optuna's
            defaults (TPE; no pruning).
    """

    def __init__(
        self,
        params: DictConfig | None = None,
        metric: str = "val/loss",
        direction: str = "minimize",
        n_trials: int = 20,
        n_jobs: int = 1,
        storage: str | None = None,
        study_name: str | None = None,
        sampler: Any = None,
        pruner: Any = None,
    ) -> None:
        self.params = params or {}
        self.metric, self.direction = metric, direction
        self.n_trials, self.n_jobs = int(n_trials), max(1, int(n_jobs))
        self.storage, self.study_name = storage, study_name
        self.sampler, self.pruner = sampler, pruner
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from aelab.search import run_study

        return run_study(self, list(arguments))
