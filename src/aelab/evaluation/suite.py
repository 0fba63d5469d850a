"""The evaluation suite run by ``aelab-eval``: every measurement that applies to a model and its data.

All figures are computed on the test split; baselines are fitted on the training split. Keys are
``test/<section>/<name>``, plus ``test/bce`` and ``test/ssim`` beside the test loop's ``test/mse`` and
``test/psnr``. The sections are functions of :mod:`aelab.evaluation.sections` (or anywhere importable), chosen
in ``conf/eval.yaml: suite.sections`` by ``_target_``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from aelab.evaluation.context import EvalContext

log = logging.getLogger("aelab")


def run_suite(
    model,
    datamodule,
    cfg: DictConfig,
    output_dir: str | Path,
    device: torch.device,
    loggers: list | None = None,
    step: int = 0,
    precision: str = "32-true",
) -> dict[str, float]:
    """Run the sections of ``cfg.sections`` (``conf/eval.yaml: suite``) in order on one shared
    :class:`~aelab.evaluation.context.EvalContext`; returns ``{key: value}``.

    Each entry is a partial function (``_target_``, ``_partial_: true``, its parameters); ``null`` or
    ``enabled: false`` skips it. Sections send their images to ``loggers`` (TensorBoard, MLflow, W&B) too.
    Each section's wall time is ``test/timing/<section>_s`` (seconds; the likelihood's is the IWAE bound's cost).
    """
    ctx = EvalContext(model, datamodule, output_dir, device, int(cfg.batch_size), loggers, step, precision)
    out: dict[str, float] = {"test/timing/encode_images_per_s": ctx.encode_images_per_s}
    for name, section in (cfg.get("sections") or {}).items():
        if section is None or not section.get("enabled", True):
            continue
        params = OmegaConf.to_container(section, resolve=True)  # resolved where ${paths...} can be reached
        params.pop("enabled", None)
        log.info("evaluation section %s", name)
        t0 = time.perf_counter()
        got = instantiate(params, _convert_="all")(ctx)
        if got:  # a section that does not apply (returns nothing) has no time either
            out |= got
            out[f"test/timing/{name}_s"] = time.perf_counter() - t0
    return out
