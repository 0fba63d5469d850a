"""torchmetrics metrics of the codes themselves, summed over the whole split and across DDP ranks: how a
codebook is used (VQ-VAE) and how sparse a code is (sparse AE)."""

from __future__ import annotations

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
