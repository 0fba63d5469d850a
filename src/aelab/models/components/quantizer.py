"""Vector quantization: a learned codebook, its straight-through gradient, EMA updates and dead-code restarts.

van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning" (NeurIPS 2017): each encoder
output vector ``z_e`` is replaced by its nearest codebook entry ``e_k`` (Sec. 3.1); the decoder's gradient is
copied to ``z_e`` (straight-through, Sec. 3.2); the encoder is pulled towards its codes by the commitment loss
``β ‖z_e − sg[e]‖²`` (eq. 3). The codebook is learned by exponential moving averages of the assigned vectors
(Appendix A.1; Razavi et al. 2019), with Laplace smoothing of the counts; codes whose average count falls below
``restart_threshold`` are restarted at random encoder outputs of the batch (as in Dhariwal et al. 2020,
"Jukebox", Sec. 3.1), so the whole codebook stays in use.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantization of vectors ``(N, code_dim)`` against ``num_codes`` learned codes.

    Args:
        num_codes: K, the codebook size (a code costs ``ceil(log2 K)`` bits).
        code_dim: the dimension of each code vector.
        commitment: β of the commitment loss (van den Oord et al. use 0.25).
        ema: learn the codebook by EMA updates (else by the codebook loss ``‖sg[z_e] − e‖²``).
        decay: the EMA decay γ.
        eps: Laplace smoothing of the EMA counts.
        restart_threshold: an EMA count below which a code is restarted (0: never); training only.

    Shapes: ``(N, D) → (quantized (N, D), indices (N,), losses {"commitment", "codebook"})``.
    """

    def __init__(
        self,
        num_codes: int = 512,
        code_dim: int = 64,
        commitment: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        if num_codes < 2 or code_dim < 1:
            raise ValueError(f"num_codes={num_codes} must be >= 2 and code_dim={code_dim} >= 1")
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.commitment, self.ema, self.decay, self.eps = (
            float(commitment),
            bool(ema),
            float(decay),
            float(eps),
        )
        self.restart_threshold = float(restart_threshold)
        init = torch.randn(self.num_codes, self.code_dim) / self.code_dim**0.5
        if self.ema:
            self.register_buffer("embedding", init)
            self.register_buffer("ema_count", torch.ones(self.num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.embedding = nn.Parameter(init)

    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest code (squared Euclidean distance) of each vector ``(N, D) → (N,)``."""
        z = z.float()
        e = self.embedding.float()
        dist2 = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(1)[None]
        return dist2.argmin(1)

    def lookup(self, indices: Tensor) -> Tensor:
        """The code vectors of ``indices`` (any shape) → ``(*indices.shape, D)``."""
        return F.embedding(indices, self.embedding)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        z32 = z.float()
        indices = self.nearest(z32)
        e = self.lookup(indices)
        if self.training and self.ema:
            self._ema_update(z32.detach(), indices)
            e = self.lookup(indices)
        commitment = self.commitment * F.mse_loss(z32, e.detach())
        codebook = torch.zeros((), device=z.device) if self.ema else F.mse_loss(e, z32.detach())
        quantized = z32 + (e - z32).detach()  # straight-through
        return quantized.to(z.dtype), indices, {"commitment": commitment, "codebook": codebook}

    @torch.no_grad()
    def _ema_update(self, z: Tensor, indices: Tensor) -> None:
        counts = torch.bincount(indices, minlength=self.num_codes).float()
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, z)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
        self.embedding.copy_(self.ema_sum / smoothed[:, None])
        if self.restart_threshold > 0:
            dead = self.ema_count < self.restart_threshold
            k = int(dead.sum())
            if k:
                pick = torch.randint(0, len(z), (k,), device=z.device)
                if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                    fresh = z[pick].contiguous()
                    dist.broadcast(fresh, src=0)
                else:
                    fresh = z[pick]
                self.embedding[dead] = fresh
                self.ema_sum[dead] = fresh * self.restart_threshold
                self.ema_count[dead] = self.restart_threshold


def perplexity(counts: Tensor) -> Tensor:
    """``exp(H(p))`` of the code-usage distribution ``p = counts / Σ counts`` (K when every code is used equally)."""
    p = counts.float() / counts.float().sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
