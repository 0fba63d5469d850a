"""A small PixelCNN over a grid of codebook indices: the autoregressive prior of a VQ-VAE (van den Oord, Vinyals &
Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS 2017, Sec. 3.3; the masked convolutions of van den
Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016, Sec. 3.4).

Position ``(i, j)`` sees only the positions before it in raster order: the first layer's mask (type A) hides the
centre too, the later ones (type B) let each position use its own features from the layers below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedConv2d(nn.Conv2d):
    """A ``k × k`` convolution that sees the rows above and, in its own row, the columns to the left (and the centre
    for mask ``"B"``)."""

    def __init__(self, mask: str, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        m = torch.ones_like(self.weight)
        k = kernel // 2
        m[:, :, k, k + (mask == "B") :] = 0
        m[:, :, k + 1 :] = 0
        self.register_buffer("mask", m, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """Logits of each position's index given the ones before it.

    Args:
        num_codes: K, the codebook size.
        channels: hidden channels.
        layers: masked convolutions after the first (type A, 7×7; then type B, 3×3).
        embed_dim: the size of each index's embedding.

    Shapes: indices ``(B, h, w)`` (int64) → logits ``(B, K, h, w)``.
    """

    def __init__(self, num_codes: int, channels: int = 64, layers: int = 5, embed_dim: int = 32) -> None:
        super().__init__()
        self.num_codes = int(num_codes)
        self.embed = nn.Embedding(self.num_codes, embed_dim)
        blocks: list[nn.Module] = [MaskedConv2d("A", embed_dim, channels, 7), nn.ReLU()]
        for _ in range(int(layers)):
            blocks += [MaskedConv2d("B", channels, channels, 3), nn.ReLU()]
        blocks.append(nn.Conv2d(channels, self.num_codes, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, indices: Tensor) -> Tensor:
        return self.net(self.embed(indices).permute(0, 3, 1, 2))

    @torch.no_grad()
    def sample(self, n: int, grid: tuple[int, int], generator: torch.Generator) -> Tensor:
        """``n`` grids of indices ``(n, h, w)``, position by position in raster order (``h · w`` passes)."""
        h, w = grid
        device = self.embed.weight.device
        out = torch.zeros((n, h, w), dtype=torch.long, device=device)
        for i in range(h):
            for j in range(w):
                probs = torch.softmax(self(out)[:, :, i, j].float(), dim=1)
                out[:, i, j] = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)
        return out
