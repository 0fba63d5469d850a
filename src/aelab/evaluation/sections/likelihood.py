"""The test likelihood of probabilistic models (the IWAE bound)."""

from __future__ import annotations

import logging

import torch

from aelab.evaluation.context import EvalContext
from aelab.evaluation.likelihood import iwae_log_likelihood, vae_log_likelihood_fn
from aelab.evaluation.scores import is_probabilistic, likelihood_inputs

log = logging.getLogger("aelab")


def likelihood(
    ctx: EvalContext,
    k: int = 5000,
    chunk: int = 500,
    batch_size: int = 100,
    num_images: int | None = None,
    seed: int = 0,
    precision: str = "auto",
) -> dict[str, float]:
    """Test NLL (nats) by importance sampling, the IWAE bound with ``k`` samples (Burda et al. 2016, eq. 8),
    beside the one-sample −ELBO; probabilistic models only.

    ``precision``: ``auto`` runs the decoder at the evaluation's precision (``bf16-mixed`` where the device has
    native bf16) with the log-likelihoods, log-weights and log-sum-exp in float64; ``32-true`` runs everything in
    fp32 (the reference).
    """
    model, device, x_test = ctx.model, ctx.device, ctx.x_test
    if not is_probabilistic(model):
        return {}
    n = len(x_test) if num_images is None else min(int(num_images), len(x_test))
    gen = torch.Generator(device=device).manual_seed(int(seed))
    use = ctx.precision if precision == "auto" else precision
    fn = vae_log_likelihood_fn(model, bf16=use == "bf16-mixed")
    iwae, elbo = [], []
    with torch.no_grad():
        for i, x in enumerate(x_test[:n].split(int(batch_size))):
            x = likelihood_inputs(model, x.to(device), int(seed) + i)
            iwae.append(iwae_log_likelihood(x, model.posterior, fn, int(k), int(chunk), gen).cpu())
            elbo.append(iwae_log_likelihood(x, model.posterior, fn, 1, 1, gen).cpu())
    return {
        "test/likelihood/nll_iwae": -torch.cat(iwae).double().mean().item(),
        "test/likelihood/nelbo": -torch.cat(elbo).double().mean().item(),
        "test/likelihood/k": float(k),
        "test/likelihood/num_images": float(n),
    }
