"""Per-image scores of a model: its likelihood inputs, −ELBO and anomaly scores (shared by the evaluation suite
and the one-class protocol)."""

from __future__ import annotations

import torch
from torch import Tensor

from aelab.evaluation.metrics import map_batches, mse_per_image, to_float
from aelab.models.capabilities import Probabilistic


def is_probabilistic(model) -> bool:
    """A model with a posterior and an ELBO (:class:`aelab.models.capabilities.Probabilistic`: the VAE, IWAE)."""
    return isinstance(model, Probabilistic)


def likelihood_inputs(model, x: Tensor, seed: int) -> Tensor:
    """What the model's likelihood is evaluated on: dynamically binarized images (seeded) when the model was
    trained binarized, else ``x`` itself."""
    if model.hparams.get("binarize"):
        return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(seed))
    return x


def negative_elbo_per_image(model, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """−ELBO (nats) of each image with one posterior sample (:meth:`aelab.models.VAE.elbo_terms`)."""
    recon, kl, _ = model.elbo_terms(x, x, generator)
    return recon + kl


def elbo_scores(model, x: Tensor, batch_size: int, device, seed: int) -> Tensor:
    """−ELBO (nats) of each float image ``(N, C, H, W)``, one seeded posterior sample, inputs binarized (seeded)
    when the model was trained binarized — the VAE's anomaly score."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return map_batches(
        lambda b: negative_elbo_per_image(model, likelihood_inputs(model, b, seed), gen),
        x,
        batch_size,
        device,
    )


def anomaly_scores(model, images: Tensor, batch_size: int, device, seed: int = 0) -> dict[str, Tensor]:
    """Per-image anomaly scores of uint8 or float images ``(N, C, H, W)`` (higher = more anomalous): ``recon``
    (reconstruction MSE) and, for a VAE, ``elbo`` (:func:`elbo_scores`)."""
    x = to_float(images)
    scores = {"recon": mse_per_image(map_batches(model.reconstruct, images, batch_size, device), x)}
    if is_probabilistic(model):
        scores["elbo"] = elbo_scores(model, x, batch_size, device, seed)
    return scores
