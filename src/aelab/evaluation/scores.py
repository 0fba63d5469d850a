"""Per-example anomaly scores of a model (shared by the evaluation suite and the one-class protocol)."""

from __future__ import annotations

import torch
from torch import Tensor

from aelab.evaluation.metrics import map_batches, mse_per_image, to_float
from aelab.models.capabilities import Probabilistic


def elbo_scores(model, x: Tensor, batch_size: int, device, seed: int) -> Tensor:
    """−ELBO (nats) of each example ``(N, *shape)``, one seeded posterior sample, inputs binarized (seeded) when the
    model was trained binarized (:meth:`aelab.models.VAE.negative_elbo`): the VAE's anomaly score."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return map_batches(lambda b: model.negative_elbo(b, gen), x, batch_size, device)


def anomaly_scores(model, examples: Tensor, batch_size: int, device, seed: int = 0) -> dict[str, Tensor]:
    """Per-example anomaly scores of uint8 images or float examples ``(N, *shape)`` (higher = more anomalous):
    ``recon`` (reconstruction MSE) and, for a probabilistic model, ``elbo`` (:func:`elbo_scores`)."""
    x = to_float(examples)
    scores = {"recon": mse_per_image(map_batches(model.reconstruct, examples, batch_size, device), x)}
    if isinstance(model, Probabilistic):
        scores["elbo"] = elbo_scores(model, x, batch_size, device, seed)
    return scores
