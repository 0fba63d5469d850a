"""Hyperparameter search on Optuna (≥ 4) inside Hydra's ``-m`` world: search spaces in config, pruning, and a
persistent study that several workers share.

``aelab-train -m hparams_search=ae [hydra.sweeper.n_trials=N] [hydra.sweeper.storage=URL]
[hydra.sweeper.study_name=NAME]`` runs the sweeper in ``hydra_plugins/aelab_optuna_sweeper`` (Hydra finds
sweepers only in that namespace); its logic is here. Each trial is a normal run folder launched by the
configured Hydra launcher (basic, ``submitit_local``, ``submitit_slurm``) with one more callback in its config,
:class:`aelab.callbacks.OptunaTrialCallback`, which talks to the study through the storage: it reports the
monitored *validation* metric every epoch and stops the trial when the pruner says so (on every DDP rank).
Training knows nothing of Optuna: the callback is an ordinary entry of ``callbacks``. The objective is the
best validation value the trial reported (read back from the study) — never a test metric, so the numbers
reported on the test set afterwards stay unbiased.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from aelab.callbacks.optuna import open_storage
from aelab.errors import ConfigError, SearchSpaceError

log = logging.getLogger("aelab")

DISTRIBUTIONS = ("float", "int", "categorical")


# ---------------------------------------------------------------------------- search space
def check_space(params: Mapping[str, Any], job_cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Validate ``hydra.sweeper.params`` against the composed job config.

    Each leaf is ``{type: float|int, low, high, log?, step?}`` or ``{type: categorical, choices: [...]}``,
    nested along its config path (``optimizer: {lr: {type: float, ...}}``, so that the command line can
    reach it: ``hydra.sweeper.params.optimizer.lr.high=0.1``) or under a dotted key; the path must
    exist in the job config.

    Raises:
        SearchSpaceError: for an unknown path, an unknown type, an empty range or no choices.
    """
    space: dict[str, dict[str, Any]] = {}
    if OmegaConf.is_config(params):
        params = OmegaConf.to_container(params, resolve=True)
    leaves = _leaves(params or {})
    if not leaves:
        raise SearchSpaceError("hydra.sweeper.params is empty: a search needs at least one parameter")
    for path, spec in leaves.items():
        if OmegaConf.select(job_cfg, path, default="__absent__") == "__absent__":
            raise SearchSpaceError(
                f"hparams_search: parameter {path!r} is not in the run config; use a key that exists, "
                "e.g. optimizer.lr or model.latent_dim"
            )
        if not isinstance(spec, dict) or spec.get("type") not in DISTRIBUTIONS:
            raise SearchSpaceError(
                f"hparams_search: {path}: type must be one of {DISTRIBUTIONS}, got {spec!r}"
            )
        if spec["type"] == "categorical":
            if not spec.get("choices"):
                raise SearchSpaceError(f"hparams_search: {path}: categorical with no choices")
        else:
            low, high = spec.get("low"), spec.get("high")
            if not (isinstance(low, int | float) and isinstance(high, int | float)) or not low < high:
                raise SearchSpaceError(
                    f"hparams_search: {path}: empty range low={low!r} high={high!r}; need low < high"
                )
            if spec.get("log") and low <= 0:
                raise SearchSpaceError(f"hparams_search: {path}: a log range needs low > 0, got {low}")
        space[path] = spec
    return space


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{dotted path: spec}`` of a (possibly nested) search space; a spec is a mapping with a ``type``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and "type" not in value:
            out |= _leaves(value, path + ".")
        else:
            out[path] = value
    return out


def suggest(trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one value per parameter with Optuna's ``trial.suggest_*``."""
    out = {}
    for path, spec in space.items():
        if spec["type"] == "float":
            out[path] = trial.suggest_float(
                path, spec["low"], spec["high"], log=bool(spec.get("log")), step=spec.get("step")
            )
        elif spec["type"] == "int":
            out[path] = trial.suggest_int(
                path,
                int(spec["low"]),
                int(spec["high"]),
                log=bool(spec.get("log")),
                step=int(spec.get("step", 1)),
            )
        else:
            choices = [
                c if isinstance(c, str | int | float | bool) or c is None else str(c) for c in spec["choices"]
            ]
            out[path] = trial.suggest_categorical(path, choices)
    return out


# ---------------------------------------------------------------------------- study
def open_study(storage: str, study_name: str, direction: str, sampler=None, pruner=None):
    """Create or continue a study (``load_if_exists``).

    ``storage`` is an RDB URL (``sqlite:///path.db``, ``postgresql://...``) or ``journal:<file>`` for
    Optuna's journal file storage on a shared file system.

    Raises:
        SearchSpaceError: when the storage cannot be opened (names the URL and the cause).
    """
    import optuna

    last: Exception | None = None
    for attempt in range(5):
        try:
            # Workers starting together on a new SQLite file would race to create its schema: the file lock
            # beside it makes them take turns (other databases handle concurrent creation themselves).
            with _sqlite_lock(storage):
                return optuna.create_study(
                    study_name=study_name,
                    storage=open_storage(storage),
                    direction=direction,
                    sampler=sampler,
                    pruner=pruner,
                    load_if_exists=True,
                )
        except Exception as err:  # noqa: BLE001 - any storage failure gets one clear line
            last = err
            if "database is locked" not in str(err):
                break
            time.sleep(0.2 + random.random() * (attempt + 1))
    raise SearchSpaceError(
        f"hydra.sweeper.storage={storage!r} cannot be opened ({type(last).__name__}: "
        f"{str(last).splitlines()[0]}); use sqlite:///path/to/study.db, another SQLAlchemy URL, or "
        "journal:/path/to/study.log"
    ) from None


@contextlib.contextmanager
def _sqlite_lock(url: str):
    """An exclusive lock on ``<db>.lock`` (``filelock``, any OS) for ``sqlite:///<db>`` URLs; nothing for other
    storages."""
    if not url.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    lock = Path(url[len("sqlite:///") :] + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        yield


def write_results(sweep_dir: Path, study, storage: str, fixed_overrides: Sequence[str]) -> Path:
    """``optimization_results.yaml`` (best params and value, study, storage, counts) and
    ``best_experiment.yaml`` (a ``conf/experiment``-style file of the best trial: its whole ``model`` and ``optimizer`` sections
    when its run folder is in this sweep, e.g. the decoder widths the search mirrored, else its params) in
    the sweep folder."""
    import optuna

    states = [t.state for t in study.trials]
    results = {
        "study_name": study.study_name,
        "storage": storage,
        "direction": study.direction.name.lower(),
        "n_trials": len(states),
        "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
        "n_pruned": states.count(optuna.trial.TrialState.PRUNED),
        "n_failed": states.count(optuna.trial.TrialState.FAIL),
    }
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        results |= {"best_trial": best.number, "best_value": best.value, "best_params": dict(best.params)}
        experiment: dict[str, Any] = {}
        for path, value in best.params.items():
            *parents, leaf = path.split(".")
            node = experiment
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = yaml.safe_load(value) if isinstance(value, str) else value  # "[512,256]" → a list
        trial_cfg = sweep_dir / str(best.number) / ".hydra" / "config.yaml"
        if (
            trial_cfg.is_file()
        ):  # the trial's whole model and optimizer sections: also what the search derived
            trial = OmegaConf.load(trial_cfg)
            for section in ("model", "optimizer"):
                if trial.get(section) is not None:
                    experiment[section] = OmegaConf.to_container(trial[section], resolve=False)
        experiment["experiment_name"] = f"{study.study_name}_best"
        lines = [
            "# @package _global_",
            f"# The best trial ({best.number}, {results['direction']} {best.value:.6g}) of Optuna study "
            f"{study.study_name!r} in {storage}.",
            f"# Overrides every trial shared: {' '.join(fixed_overrides) or '(none)'}",
            "# Copy to conf/experiment/<name>.yaml and run: aelab-train experiment=<name>",
            OmegaConf.to_yaml(OmegaConf.create(experiment)),
        ]
        (sweep_dir / "best_experiment.yaml").write_text("\n".join(lines))
    path = sweep_dir / "optimization_results.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(results)))
    return path


def best_reported(study, number: int, direction: str) -> float | None:
    """The best finite value trial ``number`` reported to the study (its objective), or ``None``."""
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    values = [v for v in frozen.intermediate_values.values() if math.isfinite(v)]
    if not values:
        return None
    return min(values) if direction == "minimize" else max(values)


def known_val_metrics(job_cfg: DictConfig) -> list[str]:
    """The ``val/...`` metrics a run of ``job_cfg`` logs: the data's declared metrics (its ``eval_metrics()``; the
    datamodule is built, its examples are not read), the model's whole-split metrics and its terms
    (:meth:`aelab.module.AutoencoderModule.metric_names`).

    Raises:
        ConfigError: for a data value the datamodule's constructor refuses (naming ``data``).
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from aelab.module import AutoencoderModule

    datamodule = None
    if OmegaConf.select(job_cfg, "data._target_") is not None:
        try:
            datamodule = instantiate(job_cfg.data)
        except InstantiationException as err:
            if isinstance(err.__cause__, ValueError):
                raise ConfigError(f"data: {err.__cause__}") from None
            raise
    shape = OmegaConf.select(job_cfg, "data.shape")
    module = AutoencoderModule(instantiate(job_cfg.model))
    names = module.metric_names(None if shape is None else list(shape), datamodule=datamodule)
    return [f"val/{name}" for name in names]


# ---------------------------------------------------------------------------- the sweep
def run_study(sweeper, arguments: list[str]):
    """Validate the search, open (or continue) the study, launch ``n_trials`` trials in batches of ``n_jobs``,
    record each as complete, pruned or failed, and write the results into the sweep folder.

    Raises:
        SearchSpaceError: before the first trial, for a bad parameter path or range, a validation metric the
            run never logs, or a storage that cannot be opened.
    """
    import optuna
    from hydra.core.utils import JobStatus

    cfg = sweeper.config
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = sweeper.storage or f"sqlite:///{sweep_dir / 'optuna.db'}"
    study_name = sweeper.study_name or sweep_dir.name
    if sweeper.direction not in ("minimize", "maximize"):
        raise SearchSpaceError(f"hydra.sweeper.direction={sweeper.direction!r} must be minimize or maximize")
    if any(
        "," in a.split("=", 1)[-1] and not a.split("=", 1)[-1].lstrip().startswith("[") for a in arguments
    ):
        raise SearchSpaceError(f"hparams_search takes fixed overrides only (no a,b lists): {arguments}")
    job_cfg = sweeper.hydra_context.config_loader.load_sweep_config(cfg, list(arguments))
    space = check_space(sweeper.params, job_cfg)
    logged = known_val_metrics(job_cfg)
    if sweeper.metric not in logged:
        raise SearchSpaceError(
            f"hydra.sweeper.metric={sweeper.metric!r} is never logged by this model; choose a validation metric "
            f"from {logged} (the search never looks at test metrics)"
        )
    study = open_study(storage, study_name, sweeper.direction, sweeper.sampler, sweeper.pruner)
    log.info(
        "Optuna study %r in %s: %d trial(s) so far, %d to run",
        study_name,
        storage,
        len(study.trials),
        sweeper.n_trials,
    )
    trial_cb = "+callbacks.optuna_trial"  # an ordinary callback of the trial's run config
    shared = [
        f"{trial_cb}._target_=aelab.callbacks.OptunaTrialCallback",
        f"{trial_cb}.storage='{storage}'",
        f"{trial_cb}.study_name='{study_name}'",
        f"{trial_cb}.metric={sweeper.metric}",
        f"{trial_cb}.direction={sweeper.direction}",
    ]
    pruner_cfg = cfg.hydra.sweeper.get("pruner")
    if pruner_cfg is not None:
        shared.append(f"{trial_cb}.pruner='{json.dumps(OmegaConf.to_container(pruner_cfg, resolve=True))}'")
    done, failures = 0, []
    while done < sweeper.n_trials:
        trials = [study.ask() for _ in range(min(sweeper.n_jobs, sweeper.n_trials - done))]
        batch = []
        for trial in trials:
            values = suggest(trial, space)
            log.info("trial %d: %s", trial.number, values)
            batch.append(
                [
                    *arguments,
                    *(
                        f"{k}={v}" for k, v in values.items()
                    ),  # str(float) is its repr; "[512,256]" stays a list
                    *shared,
                    f"{trial_cb}.trial_id={trial._trial_id}",
                    f"hydra.sweep.subdir={trial.number}",  # the trial's folder is named by its number
                ]
            )
        returns = sweeper.launcher.launch(batch, initial_job_idx=trials[0].number)
        for trial, ret in zip(trials, returns, strict=True):
            error = ret._return_value if ret.status == JobStatus.FAILED else None
            best = best_reported(study, trial.number, sweeper.direction)
            if isinstance(error, optuna.TrialPruned) or type(error).__name__ == "TrialPruned":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            elif error is None and best is not None:
                study.tell(trial, best)
            else:
                why = error if error is not None else "no finite validation value was reported"
                log.warning("trial %d failed: %r", trial.number, why)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                failures.append((trial.number, why))
        done += len(trials)
    path = write_results(sweep_dir, study, storage, arguments)
    log.info("results in %s", path)
    if failures and len(failures) == done:
        number, error = failures[0]
        raise RuntimeError(
            f"every trial failed; trial {number}: {error!r} (its folder: {sweep_dir / str(number)})"
        )
    return study
