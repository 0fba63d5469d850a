"""The test likelihood of probabilistic models (the IWAE bound)."""

from __future__ import annotations

import logging

import torch

from aelab.evaluation.context import EvalContext, requires
from aelab.models.capabilities import Probabilistic
from aelab.models.objectives import importance_weighted_bound

log = logging.getLogger("aelab")


@requires(Probabilistic, kinds=("image", "table"))
def likelihood(
    ctx: EvalContext,
    k: int = 5000,
    chunk: int = 500,
    batch_size: int = 100,
    num_images: int | None = None,
    seed: int = 0,
    precision: str = "auto",
) -> dict[str, float]:
    """Test NLL (nats) by importance sampling, the IWAE bound with ``k`` samples (Burda et al. 2016, eq. 8;
    :func:`aelab.models.objectives.importance_weighted_bound`, the bound the IWAE trains on), beside the one-sample
    −ELBO (``L_1``).

    ``precision``: ``auto`` runs the decoder at the evaluation's precision (``bf16-mixed`` where the device has
    native bf16) with the log-weights and their log-sum-exp in float64; ``32-true`` runs the decoder in fp32.
    """
    model, device, x_test = ctx.model, ctx.device, ctx.x_test
    n = len(x_test) if num_images is None else min(int(num_images), len(x_test))
    gen = torch.Generator(device=device).manual_seed(int(seed))
    bf16 = (ctx.precision if precision == "auto" else precision) == "bf16-mixed"
    iwae, elbo = [], []
    with torch.no_grad():
        for i, x in enumerate(x_test[:n].split(int(batch_size))):
            x = model.likelihood_input(
                x.to(device), torch.Generator(device=device).manual_seed(int(seed) + i)
            )
            mu, logvar = model.posterior(x)
            mu, logvar = mu.float(), logvar.float()

            def log_px(z, x=x):
                with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=bf16):
                    return model.log_px(x, z)

            for out, samples, step in ((iwae, int(k), int(chunk)), (elbo, 1, 1)):
                bound = importance_weighted_bound(mu, logvar, log_px, samples, step, gen, dtype=torch.float64)
                out.append(bound.cpu())
    return {
        "test/likelihood/nll_iwae": -torch.cat(iwae).mean().item(),
        "test/likelihood/nelbo": -torch.cat(elbo).mean().item(),
        "test/likelihood/k": float(k),
        "test/likelihood/num_images": float(n),
    }
