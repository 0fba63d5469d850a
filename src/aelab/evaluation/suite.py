"""The evaluation suite run by ``aelab-eval``: every measurement that applies to a model.

All figures are computed on the official test split (10k images for MNIST); baselines are fitted on the
training split. Keys are ``test/<section>/<name>``, plus ``test/bce`` and ``test/ssim`` beside the test loop's
``test/mse`` and ``test/psnr``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from aelab.evaluation.metrics import (
    map_batches,
    mse_per_image,
    to_float,
)
from aelab.models.capabilities import Probabilistic

log = logging.getLogger("aelab")


def is_vae(model) -> bool:
    """A model with a posterior and an ELBO (:class:`aelab.models.capabilities.Probabilistic`)."""
    return isinstance(model, Probabilistic)


def negative_elbo_per_image(model, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """−ELBO (nats) of each image with one posterior sample (:meth:`aelab.models.VAE.elbo_terms`)."""
    recon, kl, _ = model.elbo_terms(x, x, generator)
    return recon + kl


def _vae_inputs(model, x: Tensor, seed: int) -> Tensor:
    """Dynamically binarized test images (seeded) when the model was trained that way, else ``x``."""
    if model.hparams.get("binarize"):
        return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(seed))
    return x


def elbo_scores(model, x: Tensor, batch_size: int, device, seed: int) -> Tensor:
    """−ELBO (nats) of each float image ``(N, 1, 28, 28)``, one seeded posterior sample, inputs binarized
    (seeded) when the model was trained binarized — the VAE's anomaly score."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return map_batches(
        lambda b: negative_elbo_per_image(model, _vae_inputs(model, b, seed), gen), x, batch_size, device
    )


def anomaly_scores(model, images: Tensor, batch_size: int, device, seed: int = 0) -> dict[str, Tensor]:
    """Per-image anomaly scores of uint8 or float images: ``recon`` (reconstruction MSE) and, for a VAE,
    ``elbo`` (:func:`elbo_scores`). Used by the suite's anomaly section and the one-class protocol."""
    x = to_float(images)
    scores = {"recon": mse_per_image(map_batches(model.reconstruct, images, batch_size, device), x)}
    if is_vae(model):
        scores["elbo"] = elbo_scores(model, x, batch_size, device, seed)
    return scores


def run_suite(
    model, datamodule, cfg: DictConfig, output_dir: str | Path, device: torch.device
) -> dict[str, float]:
    """Run the sections of ``cfg.sections`` (``conf/eval.yaml: suite``) in order on one shared
    :class:`~aelab.evaluation.context.EvalContext`; returns ``{key: value}``.

    Each entry is a partial function (``_target_``, ``_partial_: true``, its parameters); ``null`` or
    ``enabled: false`` skips it.
    """
    from hydra.utils import instantiate

    from aelab.evaluation.context import EvalContext

    ctx = EvalContext(model, datamodule, output_dir, device, int(cfg.batch_size))
    out: dict[str, float] = {"test/timing/encode_images_per_s": ctx.encode_images_per_s}
    for name, section in (cfg.get("sections") or {}).items():
        if section is None or not section.get("enabled", True):
            continue
        params = OmegaConf.to_container(section, resolve=True)  # resolved where ${paths...} can be reached
        params.pop("enabled", None)
        log.info("evaluation section %s", name)
        out |= instantiate(params)(ctx)
    return out
