"""``aelab-train resume=<run dir> [overrides]``: continue a run in its own folder and TensorBoard run.

The run's composed config comes from ``<run>/.hydra/config.yaml`` with only the overrides given now applied;
``checkpoints/last.ckpt`` is loaded; ``.hydra/overrides.yaml`` stays as it was and the resume's overrides are
appended to ``.hydra/resume_overrides.yaml``. The folder is untrusted input like a checkpoint: its config may
only build what :mod:`aelab.trust` allows, and the trust is the one declared now (``AELAB_TRUST``, the
resume's own ``trust=[...]``), never a ``trust`` key stored in the folder.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from aelab.errors import ConfigError, MissingDataError
from aelab.rundir import RunDir
from aelab.trust import RUN_RESOLVERS, RUN_TARGETS, allowlist, check_config_tree, trusted_prefixes
from aelab.utils import runs
from aelab.utils.config import compose_config

log = logging.getLogger("aelab")

#: overrides a resume may not change: the folder and the checkpoint are the run's
FIXED = ("paths.output_dir", "ckpt_path", "run_id")


def _trust_override(overrides: list[str]) -> list[str]:
    """The ``trust=[...]`` of the resume's own command (``[]`` when it gives none)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(
        [o for o in overrides if o.lstrip("+~").startswith("trust=")]
    )
    value = parsed[-1].value() if parsed else []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def resume_config(run_dir: str | Path, overrides: list[str]) -> DictConfig:
    """The composed config of the run in ``run_dir`` (``.hydra/config.yaml``) with ``overrides`` applied, set to
    continue from ``checkpoints/last.ckpt`` in that same folder.

    Raises:
        MissingDataError: when the folder is not a run folder, or has no checkpoint yet.
        ConfigError: for an override of the folder or the checkpoint.
        UntrustedFileError: for a target or resolver the folder's config may not use.
    """
    run = RunDir(Path(run_dir).expanduser().resolve())
    run_dir, cfg_file = run.path, run.config_file
    if not run.is_run:
        raise MissingDataError(
            f"resume={run_dir}: not an aelab run folder ({cfg_file} is missing); pass the folder of a run, "
            "e.g. resume=logs/train/runs/<id>"
        )
    ckpt = run.last_ckpt
    if not ckpt.is_file():
        raise MissingDataError(
            f"resume={run_dir}: the run has no checkpoint yet ({ckpt} is missing: it stopped before its first "
            f"epoch ended). Start it afresh with the overrides in {run_dir / '.hydra' / 'overrides.yaml'}"
        )
    bad = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in FIXED]
    if bad:
        raise ConfigError(f"resume= keeps the run's folder and checkpoint; drop {', '.join(bad)}")
    trust = _trust_override(overrides)
    cfg = compose_config(
        "config", [o for o in overrides if not o.lstrip("+~").startswith("trust=")], run_dir / ".hydra"
    )
    OmegaConf.update(cfg, "trust", trust, force_add=True)  # the reader's, never the folder's
    # what will be built: the stored config as the resume's own overrides left it
    check_config_tree(
        OmegaConf.to_container(cfg, resolve=False),
        str(cfg_file),
        allowlist(RUN_TARGETS, trusted_prefixes(trust)),
        resolvers=RUN_RESOLVERS,
    )
    OmegaConf.update(cfg, "paths.output_dir", str(run_dir))
    OmegaConf.update(cfg, "ckpt_path", str(ckpt))
    return cfg


def record_resume(cfg: DictConfig, overrides: list[str]) -> None:
    """Log the resume into the run folder (rank 0): its log file continues, and the resume's overrides are appended
    to ``.hydra/resume_overrides.yaml`` (``.hydra/overrides.yaml`` stays as it was)."""
    if runs.global_rank() != 0:
        return
    out = Path(cfg.paths.output_dir)
    task = cfg.get("task_name", "train")
    handler = logging.FileHandler(out / f"{task}.log", mode="a")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    with open(out / ".hydra" / "resume_overrides.yaml", "a") as f:
        f.write(f"# {dt.datetime.now().isoformat(timespec='seconds')}\n- {overrides!r}\n")
    log.info("resuming %s from %s with overrides %s", out, cfg.ckpt_path, overrides)
