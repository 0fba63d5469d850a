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

from aelab.errors import ConfigError
from aelab.evaluation.context import EvalContext

log = logging.getLogger("aelab")


def applies(name: str, section, model, datamodule=None) -> bool:
    """Whether section ``name`` runs for ``model``: ``enabled: true`` always, ``false`` never, ``auto`` (the default)
    when the model can do what the section measures (the protocols of :mod:`aelab.models.capabilities` the section
    function declares with :func:`~aelab.evaluation.context.requires`) and, for a section about images, the data
    are images (the data contract's ``image_shape``)."""
    if section is None:
        return False
    enabled = section.get("enabled", True)
    if enabled == "auto":
        from hydra.utils import get_method

        fn = get_method(section["_target_"])
        needs = getattr(fn, "requires", ())
        if getattr(fn, "images", False) and getattr(datamodule, "image_shape", True) is None:
            return False
        return all(isinstance(model, protocol) for protocol in needs)
    if not isinstance(enabled, bool):
        raise ConfigError(f"suite.sections.{name}.enabled={enabled!r} must be auto, true or false")
    return enabled


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
    """Run the sections of ``cfg.sections`` (``conf/suite/<preset>.yaml``) that apply to ``model`` (:func:`applies`)
    in order on one shared :class:`~aelab.evaluation.context.EvalContext`; returns ``{key: value}``.

    Each entry is a partial function (``_target_``, ``_partial_: true``, its parameters). Sections send their
    images to ``loggers`` (TensorBoard, MLflow, W&B) too. A progress bar shows the section, its position, the
    elapsed time and an estimate of the rest; each section's wall time is ``test/timing/<section>_s`` (seconds),
    the whole suite's ``test/timing/suite_s``, and ``test/suite/full`` says whether the full preset ran (1) or the
    quick one (0).
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    sections = cfg.get("sections") or {}
    chosen = [name for name, section in sections.items() if applies(name, section, model, datamodule)]
    left_out = [name for name, section in sections.items() if section is not None and name not in chosen]
    if left_out:
        log.info(
            "evaluation sections that do not apply to %s: %s (switch one on with suite.sections.<name>.enabled=true)",
            type(model).__name__, ", ".join(left_out),
        )  # fmt: skip
    ctx = EvalContext(model, datamodule, output_dir, device, int(cfg.batch_size), loggers, step, precision)
    out: dict[str, float] = {"test/suite/full": float(cfg.get("name") == "full")}
    if ctx.encode_images_per_s is not None:
        out["test/timing/encode_images_per_s"] = ctx.encode_images_per_s
    bar = tqdm(chosen, desc="evaluation", unit="section", leave=True, dynamic_ncols=True)
    for name in bar:
        bar.set_postfix_str(name)
        params = OmegaConf.to_container(
            sections[name], resolve=True
        )  # resolved where ${paths...} can be reached
        params.pop("enabled", None)
        log.info("evaluation section %s", name)
        t0 = time.perf_counter()
        got = instantiate(params, _convert_="all")(ctx)
        if got:  # a section that does not apply (returns nothing) has no time either
            out |= got
            out[f"test/timing/{name}_s"] = time.perf_counter() - t0
    bar.close()
    out["test/timing/suite_s"] = time.perf_counter() - t_start
    log.info(
        "evaluation suite (%s) finished in %.1f s: %s", cfg.get("name", "custom"), out["test/timing/suite_s"],
        ", ".join(f"{n} {out[f'test/timing/{n}_s']:.1f} s" for n in chosen if f"test/timing/{n}_s" in out),
    )  # fmt: skip
    return out
