"""``aelab-train``: the Hydra application (``conf/train.yaml``), ``resume=<run dir>``, or a DDP child's job."""

from __future__ import annotations

import logging
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from aelab import CONF_DIR, jobs
from aelab.cli import one_line
from aelab.pipeline import resume, run_job, train
from aelab.utils import runs


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    return one_line("aelab-train", run_job, cfg)


def main() -> Any:
    """The ``aelab-train`` command: a DDP child, ``resume=<run dir>``, or the Hydra application."""
    runs.reset_run_id()
    child = jobs.child_config()
    if child is not None:  # a DDP rank started by Lightning's launcher: the parent's job, nothing else
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        return train(child)
    args = sys.argv[1:]
    resume_args = [a for a in args if a.startswith("resume=")]
    if resume_args:
        if "-m" in args or "--multirun" in args:
            raise SystemExit("aelab-train: resume= continues one run; it does not combine with -m")
        rest = [a for a in args if not a.startswith("resume=")]
        return one_line("aelab-train", resume, resume_args[-1].split("=", 1)[1], rest)
    return hydra_main()
