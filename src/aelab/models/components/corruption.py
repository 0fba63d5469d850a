"""Input corruptions for denoising autoencoders (Vincent et al. 2008, 2010).

Each corruption maps clean images ``(B, C, H, W)`` in [0, 1] to corrupted images of the same shape; the
clean image stays the target. A ``torch.Generator`` makes the noise reproducible (aelab seeds one for
validation and test so their numbers compare across runs and epochs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aelab.utils.validate import valid_probability, valid_sigma


class Corruption(nn.Module):
    """Base class. Subclasses implement :meth:`corrupt`.

    Args:
        clip: clamp the corrupted image to [0, 1] (only changes additive noise).
    """

    def __init__(self, clip: bool = False) -> None:
        super().__init__()
        self.clip = clip

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        out = self.corrupt(x, generator)
        return out.clamp(0.0, 1.0) if self.clip else out

    @staticmethod
    def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class GaussianNoise(Corruption):
    """Additive white Gaussian noise: ``x + sigma * N(0, 1)``, in pixel units of the [0, 1] range.

    Args:
        sigma: noise standard deviation (σ = 0.5 gives a noisy-input PSNR of about 6 dB on MNIST).
        clip: clamp to [0, 1] afterwards.
    """

    def __init__(self, sigma: float = 0.5, clip: bool = False) -> None:
        super().__init__(clip)
        if not valid_sigma(sigma):
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + self.sigma * noise


class Masking(Corruption):
    """Masking noise: each pixel is set to 0 independently with probability ``p``.

    Args:
        p: drop probability in [0, 1].
    """

    def __init__(self, p: float = 0.3, clip: bool = False) -> None:
        super().__init__(clip)
        if not valid_probability(p):
            raise ValueError(f"masking probability p must be in [0, 1], got {p}")
        self.p = float(p)

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return x * (self._uniform(x, generator) >= self.p)


class SaltAndPepper(Corruption):
    """Salt-and-pepper noise: each pixel is replaced with probability ``p`` by 0 or 1 (even odds).

    Args:
        p: replacement probability in [0, 1].
    """

    def __init__(self, p: float = 0.2, clip: bool = False) -> None:
        super().__init__(clip)
        if not valid_probability(p):
            raise ValueError(f"salt-and-pepper probability p must be in [0, 1], got {p}")
        self.p = float(p)

    def corrupt(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        u = self._uniform(x, generator)
        salt = (u < self.p / 2).to(x.dtype)
        hit = u < self.p
        return torch.where(hit, salt, x)
