"""Per-example anomaly scores of a model (shared by the evaluation suite, the one-class protocol and aelab-score)."""

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


def squared_errors(model, x: Tensor, batch_size: int, device) -> Tensor:
    """The squared error of the deterministic reconstruction of each value of records ``(N, F)`` (float, in the
    data's scaled units): ``(N, F)``."""
    x = to_float(x).flatten(1)
    return (map_batches(model.reconstruct, x, batch_size, device).flatten(1).float() - x).pow(2)


def error_scale(model, x_train: Tensor, batch_size: int, device, floor: float = 1e-12) -> Tensor:
    """Each feature's mean squared reconstruction error over the training records ``(N, F)``, shrunk halfway to the
    mean over the features: ``(F,)``, ``(e_f + ē) / 2``. Without the shrinkage a feature that the model reconstructs
    almost exactly on every training record (a pixel that is always 0) would weigh without bound; with it no
    feature weighs more than twice the average (measured in ``scripts/bench_first_try.py``)."""
    per_feature = squared_errors(model, x_train, batch_size, device).mean(0)
    return ((per_feature + per_feature.mean()) / 2).clamp_min(floor)


def record_scores(model, x: Tensor, batch_size: int, device, scale: Tensor | None = None) -> Tensor:
    """The anomaly score of each record ``(N, F)``, higher = more anomalous: ``(N,)``.

    - a probabilistic model: −ELBO in nats (:func:`elbo_scores`, seed 0);
    - with ``scale`` (:func:`error_scale` of the training records): the standardised error
      ``mean_f (x_f − x̂_f)² / scale_f``, so that a feature the model reconstructs well on normal records weighs
      more than one it always misses (a diagonal Mahalanobis distance of the residuals, its variances shrunk
      towards their mean);
    - else the reconstruction MSE (the scaled units squared).

    The training run's test figures (``test/anomaly/auroc``) and ``aelab-score`` both score with this.
    """
    if isinstance(model, Probabilistic):
        return elbo_scores(model, to_float(x), batch_size, device, seed=0)
    errors = squared_errors(model, x, batch_size, device)
    if scale is not None:
        errors = errors / scale.to(errors.device)
    return errors.mean(1)


def record_scorer(model, datamodule, batch_size: int, device):
    """``score(x (N, F)) → (N,)``: :func:`record_scores` for records of ``datamodule``, standardised by the training
    records' errors when the data asks for it (``datamodule.standardize_errors``, data=tabular's default; never for
    a probabilistic model, whose −ELBO weighs its features itself)."""
    scale = None
    if getattr(datamodule, "standardize_errors", False) and not isinstance(model, Probabilistic):
        scale = error_scale(model, datamodule.split_tensors("train")[0], batch_size, device)
    return lambda x: record_scores(model, x, batch_size, device, scale)
