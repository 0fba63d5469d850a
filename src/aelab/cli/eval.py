"""``aelab-eval ckpt_path=...``: test a checkpoint written by ``aelab-train``, then run the evaluation suite
(:func:`aelab.pipeline.evaluate`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from aelab import CONF_DIR
from aelab.cli import one_line
from aelab.pipeline import evaluate


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    one_line("aelab-eval", evaluate, cfg)
