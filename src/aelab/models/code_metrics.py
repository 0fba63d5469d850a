"""torchmetrics metrics of the codes themselves, summed over the whole split and across DDP ranks: how a
codebook is used (VQ-VAE) and how sparse a code is (sparse AE); and of posteriors over a split: active units and
I(x; z) (the sentence VAE's)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from aelab.models.components.quantizer import perplexity


class CodePerplexity(Metric):
    """``exp(H)`` of how often each of ``num_codes`` codebook entries is chosen over the split (Jukebox-style
    codebook perplexity: ``num_codes`` when every code is used equally, 1 when one code is always chosen)."""

    full_state_update = False

    def __init__(self, num_codes: int) -> None:
        super().__init__()
        self.num_codes = int(num_codes)
        self.add_state("counts", default=torch.zeros(self.num_codes), dist_reduce_fx="sum")

    def update(self, indices: Tensor) -> None:
        self.counts += torch.bincount(indices.flatten(), minlength=self.num_codes).to(self.counts)

    def compute(self) -> Tensor:
        return perplexity(self.counts)


class CodebookUsage(CodePerplexity):
    """The fraction of codebook entries chosen at least once over the split, in [0, 1]."""

    def compute(self) -> Tensor:
        return (self.counts > 0).float().mean()


class DeadFraction(Metric):
    """The fraction of code dimensions never non-zero over the split ("dead latents", Gao et al. 2024), in [0, 1]."""

    full_state_update = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.add_state("active", default=torch.zeros(int(dim)), dist_reduce_fx="sum")

    def update(self, codes: Tensor) -> None:
        self.active += (codes.detach() != 0).any(0).to(self.active)

    def compute(self) -> Tensor:
        return (self.active == 0).float().mean()


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Active units (Burda et al., ICLR 2016, §5.2): the latent dimensions ``d`` whose posterior mean varies across
    the data, ``Cov_x(E_q(z|x)[z_d]) > threshold`` (0.01); ``mu`` is ``(N, D)``."""
    return int((mu.double().var(0, unbiased=False) > threshold).sum())


def mutual_information(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> float:
    """I(x; z) under q (Hoffman & Johnson, "ELBO surgery", NeurIPS 2016 workshop), estimated as He et al. (ICLR
    2019) do: ``E_x[E_q(z|x) log q(z|x)] − E_q(z) log q(z)``, the aggregate posterior ``q(z)`` the mixture of the
    ``N`` posteriors given (one draw per posterior); nats. ``mu``, ``logvar``: ``(N, D)``."""
    mu, logvar = mu.double(), logvar.double()
    n, d = mu.shape
    neg_entropy = (-0.5 * d * math.log(2 * math.pi) - 0.5 * (1 + logvar).sum(1)).mean()
    z = mu + torch.randn(mu.shape, dtype=mu.dtype, generator=generator) * (0.5 * logvar).exp()
    # log q(z_i | x_j) for every pair: (N, N)
    diff = z[:, None, :] - mu[None, :, :]
    log_q = -0.5 * (diff.pow(2) / logvar.exp()[None] + logvar[None] + math.log(2 * math.pi)).sum(-1)
    log_qz = torch.logsumexp(log_q, 1) - math.log(n)
    return float(neg_entropy - log_qz.mean())
